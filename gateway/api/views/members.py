"""A tenant's members and invitations: list, change a role, remove (or leave), invite, revoke an
invitation; the workflows are tenancy's (gateway/tenancy/memberships.py)."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from gateway.access import (
    get_member_for_tenant,
    get_members_for_tenant,
    get_pending_invitations_for_tenant,
)
from gateway.api import serializers as api
from gateway.api.errors import Conflict, errors
from gateway.api.permissions import EVERYONE, MANAGERS, TEAM
from gateway.api.views.tenants import TenantView
from gateway.models import Invitation, Membership
from gateway.proxies import public_base_url
from gateway.tenancy import memberships
from gateway.tenancy.invitations import send_invitation
from gateway.tenancy.memberships import MembershipError, NotAllowed


def membership_refused(exc: Exception) -> exceptions.APIException:
    if isinstance(exc, NotAllowed):
        return exceptions.PermissionDenied(str(exc))
    return Conflict(str(exc))


class MemberListView(TenantView):
    roles = {"GET": (TEAM, "listing members")}

    @extend_schema(summary="List members", tags=["members"],
                   responses={200: api.MemberSerializer(many=True), **errors()})
    def get(self, request, slug: str):
        return Response(api.MemberSerializer(get_members_for_tenant(self.actor.tenant), many=True).data)


class MemberDetailView(TenantView):
    roles = {"PATCH": (MANAGERS, "changing roles"), "DELETE": (EVERYONE, "leaving")}

    @extend_schema(summary="Change a member's role", tags=["members"], request=api.RoleSerializer,
                   responses={200: api.MemberSerializer, **errors(400, 409)},
                   description="Owners and admins change roles; only an owner makes or demotes an owner. 409 for "
                               "the last owner. Without ``role`` nothing changes: 200 with the member as it is.")
    def patch(self, request, slug: str, member_id: int):
        form = api.RoleSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        try:
            if "role" in form.validated_data:
                member = memberships.change_role(self.actor.tenant, member_id, form.validated_data["role"],
                                                 actor=self.actor)
            else:
                member = get_member_for_tenant(self.actor.tenant, member_id)
        except Membership.DoesNotExist as exc:
            raise exceptions.NotFound(f"No member {member_id} in {self.actor.tenant.slug}.") from exc
        except (NotAllowed, MembershipError) as exc:
            raise membership_refused(exc) from exc
        return Response(api.MemberSerializer(member).data)

    @extend_schema(summary="Remove a member (or leave)", tags=["members"], responses={204: None, **errors(409)},
                   description="Owners and admins remove members (only an owner removes an owner); anyone may "
                               "remove themselves. The last owner cannot leave (409).")
    def delete(self, request, slug: str, member_id: int):
        try:
            memberships.remove_member(self.actor.tenant, member_id, actor=self.actor)
        except Membership.DoesNotExist as exc:
            raise exceptions.NotFound(f"No member {member_id} in {self.actor.tenant.slug}.") from exc
        except (NotAllowed, MembershipError) as exc:
            raise membership_refused(exc) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationListView(TenantView):
    roles = {"GET": (TEAM, "listing invitations"), "POST": (MANAGERS, "inviting members")}

    @extend_schema(summary="List pending invitations", tags=["members"],
                   responses={200: api.InvitationSerializer(many=True), **errors()})
    def get(self, request, slug: str):
        pending = [i for i in get_pending_invitations_for_tenant(self.actor.tenant) if memberships.is_open(i)]
        return Response(api.InvitationSerializer(pending, many=True).data)

    @extend_schema(summary="Invite a member", tags=["members"], request=api.InviteSerializer,
                   responses={201: api.InvitationSerializer, **errors(400, 409)},
                   description="Emails the invitation link (valid 7 days). Only an owner invites an owner; "
                               "members plus pending invitations stay within the plan's member limit (409).")
    def post(self, request, slug: str):
        form = api.InviteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            issued = memberships.invite_member(self.actor.tenant, form.validated_data["email"],
                                               form.validated_data["role"], actor=self.actor)
        except (NotAllowed, MembershipError) as exc:
            raise membership_refused(exc) from exc
        send_invitation(public_base_url(request), issued)
        return Response(api.InvitationSerializer(issued.invitation).data, status=status.HTTP_201_CREATED)


class InvitationRevokeView(TenantView):
    roles = {"POST": (MANAGERS, "revoking invitations")}

    @extend_schema(summary="Revoke an invitation", tags=["members"], request=None,
                   responses={200: api.InvitationSerializer, **errors()},
                   description="Its link stops working.")
    def post(self, request, slug: str, invitation_id: int):
        try:
            invitation = memberships.revoke_invitation(self.actor.tenant, invitation_id, actor=self.actor)
        except Invitation.DoesNotExist as exc:
            raise exceptions.NotFound(f"No invitation {invitation_id} in {self.actor.tenant.slug}.") from exc
        except NotAllowed as exc:
            raise membership_refused(exc) from exc
        return Response(api.InvitationSerializer(invitation).data)
