"""WebSocket consumers for the dashboard (session-authenticated through Channels)."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from gateway.access import get_membership_for_user
from gateway.models import Membership
from usage.live import group_name


class LiveUsageConsumer(AsyncJsonWebsocketConsumer):
    """Pushes each settled request of one tenant to its members, as it settles."""

    async def connect(self):
        slug = self.scope["url_route"]["kwargs"]["tenant_slug"]
        try:
            membership = await database_sync_to_async(get_membership_for_user)(self.scope["user"], slug)
        except Membership.DoesNotExist:
            await self.close(code=4403)
            return
        self.group = group_name(membership.tenant_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def usage_settled(self, event):
        await self.send_json(event["record"])
