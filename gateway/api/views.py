"""The management API: a tenant's keys, members, usage, plan and billing, under /api/tenants/<slug>/.

Views are thin: resolve the caller (permissions.resolve_actor: 404 for outsiders), check the
role for the method (403 naming who may), load tenant data through gateway.access, change
state through the named workflows the dashboard uses too (issue_api_key, revoke_api_key,
gateway.dashboard.memberships, billing.subscriptions), answer with a serializer.
"""

from decimal import Decimal

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, generics, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import stripe_api
from billing.models import Plan
from billing.stripe_api import BillingError, BillingNotConfigured, StripeUnavailable
from billing.subscriptions import CheckoutRefused, grace_ends, open_portal, start_checkout
from gateway.access import (
    count_active_api_keys_for_tenant,
    count_members_for_tenant,
    get_api_key_for_tenant,
    get_api_keys_for_tenant,
    get_members_for_tenant,
    get_memberships_for_user,
    get_pending_invitations_for_tenant,
    get_subscription_for_tenant,
    get_usage_records_for_tenant,
)
from gateway.api import serializers as api
from gateway.api.authentication import MANAGEMENT_SCOPE
from gateway.api.errors import BadGateway, Conflict, ServiceUnavailable
from gateway.api.permissions import (
    BILLING_MANAGERS,
    EVERYONE,
    MANAGERS,
    TEAM,
    Actor,
    can_manage_keys,
    can_revoke_key,
    require_role,
    resolve_actor,
)
from gateway.api_keys import KeyLimitReached, issue_api_key, revoke_api_key
from gateway.dashboard import memberships
from gateway.dashboard.catalog import plan_models
from gateway.dashboard.members import send_invitation
from gateway.dashboard.memberships import MembershipError, NotAllowed
from gateway.models import ApiKey, Invitation, Membership
from usage.summaries import daily_usage, month_summary

ERROR = inline_serializer("Error", {"error": inline_serializer("ErrorDetail", {
    "message": serializers.CharField(),
    "code": serializers.CharField(),
    "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False),
})})
ERRORS = {
    400: OpenApiResponse(ERROR, description="Invalid input: ``fields`` says which and why."),
    401: OpenApiResponse(ERROR, description="Not signed in, or the API key is unknown, revoked or expired."),
    403: OpenApiResponse(ERROR, description="The caller's role (or key scope, or CSRF token) does not allow it."),
    404: OpenApiResponse(ERROR, description="No such tenant among the caller's, or no such object in it."),
    409: OpenApiResponse(ERROR, description="The tenant's state or plan does not allow it (the message says why)."),
}


def errors(*statuses: int) -> dict:
    return {code: ERRORS[code] for code in (401, 403, 404, *statuses)}


class ManagementView(APIView):
    """Any management endpoint: signed in or a management key, else 401 saying how."""

    def permission_denied(self, request, message=None, code=None):
        if request.authenticators and not request.successful_authenticator:
            raise exceptions.NotAuthenticated("Sign in, or send a tenant API key with the 'management' scope as "
                                              "'Authorization: Bearer tg-...'.")
        super().permission_denied(request, message, code)


class TenantView(ManagementView):
    """An endpoint under /api/tenants/<slug>/: sets ``self.actor`` before the handler runs.

    ``roles`` maps an HTTP method to (the roles that may call it, what the call does).
    """

    roles: dict[str, tuple[frozenset, str]] = {}
    actor: Actor

    def check_permissions(self, request):
        super().check_permissions(request)
        self.actor = resolve_actor(request, self.kwargs["slug"])
        method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
        if method in self.roles:
            roles, action = self.roles[method]
            require_role(self.actor, roles, action)


def tenant_row(tenant, role: str) -> dict:
    return {"slug": tenant.slug, "name": tenant.name, "role": role}


class TenantListView(ManagementView):
    @extend_schema(summary="The caller's tenants", tags=["tenants"],
                   responses={200: api.TenantSerializer(many=True), 401: ERRORS[401]},
                   description="A signed-in user's tenants with their role in each; a management key's own tenant.")
    def get(self, request):
        if isinstance(request.auth, ApiKey):
            rows = [tenant_row(request.auth.tenant, request.user.role)]
        else:
            rows = [tenant_row(m.tenant, m.role) for m in get_memberships_for_user(request.user)]
        return Response(api.TenantSerializer(rows, many=True).data)


class TenantDetailView(TenantView):
    @extend_schema(summary="One tenant and the caller's role in it", tags=["tenants"],
                   responses={200: api.TenantSerializer, **errors()})
    def get(self, request, slug: str):
        return Response(api.TenantSerializer(tenant_row(self.actor.tenant, self.actor.role)).data)


# --- API keys ------------------------------------------------------------------------------

def key_or_404(actor: Actor, key_id: int) -> ApiKey:
    try:
        return get_api_key_for_tenant(actor.tenant, key_id)
    except ApiKey.DoesNotExist as exc:
        raise exceptions.NotFound(f"No API key {key_id} in {actor.tenant.slug}.") from exc


class KeyListView(TenantView):
    roles = {"GET": (TEAM, "listing API keys"), "POST": (TEAM, "creating API keys")}

    @extend_schema(summary="List API keys", tags=["keys"],
                   responses={200: api.ApiKeySerializer(many=True), **errors()},
                   description="Every key of the tenant, newest first, revoked and expired ones included "
                               "(``status`` says which). Secrets are never shown again.")
    def get(self, request, slug: str):
        return Response(api.ApiKeySerializer(get_api_keys_for_tenant(self.actor.tenant), many=True).data)

    @extend_schema(summary="Create an API key", tags=["keys"], request=api.KeyRequestSerializer,
                   responses={201: api.IssuedKeySerializer, **errors(400, 409)},
                   description="The answer holds the raw key in ``key``, the only time it is shown. 409 when the "
                               "plan's key limit is reached. Only owners and admins grant the 'management' scope.")
    def post(self, request, slug: str):
        actor = self.actor
        plan = get_subscription_for_tenant(actor.tenant).plan
        form = api.KeyRequestSerializer(data=request.data,
                                        context={"model_ids": [m.public_id for m in plan_models(plan)]})
        form.is_valid(raise_exception=True)
        fields = form.validated_data
        if MANAGEMENT_SCOPE in fields["scopes"] and not can_manage_keys(actor):
            raise exceptions.PermissionDenied(f"Only owners and admins create keys with the 'management' scope; "
                                              f"your role in {actor.tenant.slug} is {actor.role}.")
        try:
            issued = issue_api_key(actor.tenant, name=fields["name"], created_by=actor.user,
                                   expires_at=fields.get("expires_at"), allowed_models=fields["allowed_models"],
                                   scopes=fields["scopes"])
        except KeyLimitReached as exc:
            raise Conflict(str(exc)) from exc
        body = {**api.ApiKeySerializer(issued.api_key).data, "key": issued.raw}
        # The raw key must not be kept by any cache on the way.
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class KeyDetailView(TenantView):
    roles = {"GET": (TEAM, "reading API keys")}

    @extend_schema(summary="One API key", tags=["keys"], responses={200: api.ApiKeySerializer, **errors()})
    def get(self, request, slug: str, key_id: int):
        return Response(api.ApiKeySerializer(key_or_404(self.actor, key_id)).data)


class KeyRevokeView(TenantView):
    roles = {"POST": (TEAM, "revoking API keys")}

    @extend_schema(summary="Revoke an API key", tags=["keys"], request=None,
                   responses={200: api.ApiKeySerializer, **errors()},
                   description="The key stops working at once. Owners and admins revoke any key; members the keys "
                               "they created. Revoking a revoked key changes nothing.")
    def post(self, request, slug: str, key_id: int):
        api_key = key_or_404(self.actor, key_id)
        if not can_revoke_key(self.actor, api_key):
            raise exceptions.PermissionDenied("Members revoke only the keys they created; ask an owner or admin.")
        revoke_api_key(api_key)
        return Response(api.ApiKeySerializer(api_key).data)


# --- members and invitations -----------------------------------------------------------------

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
                               "the last owner.")
    def patch(self, request, slug: str, member_id: int):
        form = api.RoleSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            member = memberships.change_role(self.actor.tenant, member_id, form.validated_data["role"],
                                             actor=self.actor)
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
        send_invitation(request, issued)
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


# --- usage -----------------------------------------------------------------------------------

class UsagePages(CursorPagination):
    ordering = ("-created_at", "-pk")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


@extend_schema(summary="List usage records", tags=["usage"], parameters=[api.UsageFilterSerializer], responses={
    200: api.UsageRecordSerializer(many=True), **errors(400)},
    description="One record per request, newest first, 50 a page (``page_size`` up to 500); follow ``next`` "
                "for older records. Filter by time (``start``, ``end``: ISO 8601 times or YYYY-MM-DD days, "
                "UTC), ``model`` and ``key`` (a key id).")
class UsageRecordListView(TenantView, generics.ListAPIView):
    roles = {"GET": (EVERYONE, "reading usage")}
    serializer_class = api.UsageRecordSerializer
    pagination_class = UsagePages

    def get_queryset(self):
        records = get_usage_records_for_tenant(self.actor.tenant)
        query = api.UsageFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        if "start" in wanted:
            records = records.filter(created_at__gte=wanted["start"])
        if "end" in wanted:
            records = records.filter(created_at__lt=wanted["end"])
        if "model" in wanted:
            records = records.filter(model=wanted["model"])
        if "key" in wanted:
            records = records.filter(api_key_id=wanted["key"])
        return records


class UsageSummaryView(TenantView):
    roles = {"GET": (EVERYONE, "reading usage")}

    @extend_schema(summary="Usage summary", tags=["usage"], parameters=[api.SummaryQuerySerializer],
                   responses={200: api.UsageSummarySerializer, **errors(400)},
                   description="This month's totals (settled spend, spend held by requests in flight, the cap, "
                               "per model) and one row per day of the last ``days`` days (UTC, zeros included), "
                               "per model or key with ``split``.")
    def get(self, request, slug: str):
        query = api.SummaryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        tenant_id = self.actor.tenant.pk
        return Response(api.UsageSummarySerializer({
            "month": month_summary(tenant_id),
            "daily": daily_usage(tenant_id, days=query.validated_data["days"], split=query.validated_data["split"]),
        }).data)


# --- plan and billing --------------------------------------------------------------------------

class PlanView(TenantView):
    roles = {"GET": (EVERYONE, "reading the plan")}

    @extend_schema(summary="Current plan, limits and this month's use", tags=["billing"],
                   responses={200: api.PlanStatusSerializer, **errors()})
    def get(self, request, slug: str):
        tenant = self.actor.tenant
        subscription = get_subscription_for_tenant(tenant)
        plan = subscription.plan
        month = month_summary(tenant.pk)
        spent = month["cost"] + month["reserved"]
        limit = plan.monthly_spend_limit
        return Response(api.PlanStatusSerializer({
            "plan": plan,
            "subscription": {**{name: getattr(subscription, name) for name in (
                "status", "current_period_end", "cancel_at_period_end", "past_due_since")},
                "grace_ends": grace_ends(subscription, plan)},
            "usage": {
                "month": month["month"], "requests": month["requests"], "spend": month["cost"],
                "reserved": month["reserved"],
                "spend_remaining": max(limit - spent, Decimal(0)) if limit is not None else None,
                "active_keys": count_active_api_keys_for_tenant(tenant),
                "members": count_members_for_tenant(tenant),
            },
        }).data)


def billing_redirect(action) -> Response:
    """Run a Stripe ``action`` (returning a Redirect), mapping its failures as /api/billing/* does."""
    if not stripe_api.is_configured():
        raise ServiceUnavailable("Billing is not configured on this server; an operator assigns plans in the admin.")
    try:
        redirect = action()
    except CheckoutRefused as exc:
        raise Conflict(str(exc)) from exc
    except (BillingNotConfigured, StripeUnavailable) as exc:
        raise ServiceUnavailable("Stripe is unavailable right now; try again in a minute.") from exc
    except BillingError as exc:
        raise BadGateway("Stripe refused the request; the operator has been told.") from exc
    return Response(api.RedirectSerializer({"url": redirect.url}).data)


BILLING_ERRORS = {**errors(400, 409), 502: OpenApiResponse(ERROR, description="Stripe refused the request."),
                  503: OpenApiResponse(ERROR, description="Billing is not configured, or Stripe is unavailable.")}


class CheckoutView(TenantView):
    roles = {"POST": (BILLING_MANAGERS, "managing billing")}

    @extend_schema(summary="Start a Stripe Checkout for a plan", tags=["billing"], request=api.CheckoutSerializer,
                   responses={200: api.RedirectSerializer, **BILLING_ERRORS},
                   description="The same as POST /api/billing/checkout. The plan applies once Stripe confirms "
                               "the payment (webhook).")
    def post(self, request, slug: str):
        form = api.CheckoutSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        plan = Plan.objects.filter(slug=form.validated_data["plan"]).first()
        if plan is None:
            raise exceptions.ValidationError({"plan": [f"Unknown plan '{form.validated_data['plan']}'."]})
        return billing_redirect(lambda: start_checkout(self.actor.tenant, plan, email=self.actor.user.email))


class PortalView(TenantView):
    roles = {"POST": (BILLING_MANAGERS, "managing billing")}

    @extend_schema(summary="Open the Stripe billing portal", tags=["billing"], request=None,
                   responses={200: api.RedirectSerializer, **BILLING_ERRORS},
                   description="The same as POST /api/billing/portal: change or cancel the plan, update the card, "
                               "see invoices.")
    def post(self, request, slug: str):
        return billing_redirect(lambda: open_portal(self.actor.tenant))

