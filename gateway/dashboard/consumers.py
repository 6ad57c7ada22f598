"""WebSocket consumers for the dashboard (session-authenticated through Channels)."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from gateway.access import get_membership_for_user
from gateway.dashboard.tenancy import can_open
from gateway.models import Membership
from usage.live import group_name

FORBIDDEN = 4403  # the close code for "not (or no longer) a member allowed on this page"


async def current_membership(scope, page: str) -> Membership | None:
    """The socket's user's membership of the tenant in its URL, read now, if it may still open
    ``page``; None once the membership is gone or its role no longer may."""
    slug = scope["url_route"]["kwargs"]["tenant_slug"]
    try:
        membership = await database_sync_to_async(get_membership_for_user)(scope["user"], slug)
    except Membership.DoesNotExist:
        return None
    return membership if can_open(membership, page) else None


class LiveUsageConsumer(AsyncJsonWebsocketConsumer):
    """Pushes each settled request of one tenant to its members, as it settles. The membership
    is read again before each push: a member removed (or no longer allowed) sees nothing more."""

    async def connect(self):
        membership = await current_membership(self.scope, "usage")
        if membership is None:
            await self.close(code=FORBIDDEN)
            return
        self.group = group_name(membership.tenant_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def usage_settled(self, event):
        if await current_membership(self.scope, "usage") is None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.close(code=FORBIDDEN)
            return
        await self.send_json(event["record"])
