"""A tenant's API keys: list, create (the raw key shown once), read, change its rate limits and
budget, revoke."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from billing.entitlements import models_on_plan
from billing.spend_budgets import set_key_budget
from gateway.access import (
    get_api_key_for_tenant,
    get_api_keys_for_tenant,
    get_subscription_for_tenant,
)
from gateway.api import serializers as api
from gateway.api.authentication import MANAGEMENT_SCOPE
from gateway.api.errors import Conflict, errors
from gateway.api.permissions import MANAGERS, TEAM, Actor, can_manage_keys, can_revoke_key
from gateway.api.views.tenants import TenantView
from gateway.api_keys import KeyLimitReached, issue_api_key, revoke_api_key, set_key_rate_limits
from gateway.models import ApiKey


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
                                        context={"model_ids": [m.public_id for m in models_on_plan(plan)]})
        form.is_valid(raise_exception=True)
        fields = form.validated_data
        if MANAGEMENT_SCOPE in fields["scopes"] and not can_manage_keys(actor):
            raise exceptions.PermissionDenied(f"Only owners and admins create keys with the 'management' scope; "
                                              f"your role in {actor.tenant.slug} is {actor.role}.")
        try:
            issued = issue_api_key(actor.tenant, name=fields["name"], created_by=actor.user,
                                   expires_at=fields.get("expires_at"), allowed_models=fields["allowed_models"],
                                   scopes=fields["scopes"], tokens_per_minute=fields.get("tokens_per_minute"),
                                   max_concurrent_requests=fields.get("max_concurrent_requests"))
        except KeyLimitReached as exc:
            raise Conflict(str(exc)) from exc
        body = {**api.ApiKeySerializer(issued.api_key).data, "key": issued.raw}
        # The raw key must not be kept by any cache on the way.
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class KeyDetailView(TenantView):
    roles = {"GET": (TEAM, "reading API keys"), "PATCH": (MANAGERS, "changing an API key's limits")}

    @extend_schema(summary="One API key", tags=["keys"], responses={200: api.ApiKeySerializer, **errors()})
    def get(self, request, slug: str, key_id: int):
        return Response(api.ApiKeySerializer(key_or_404(self.actor, key_id)).data)

    @extend_schema(summary="Change an API key's rate limits or budget", tags=["keys"],
                   request=api.KeyUpdateSerializer, responses={200: api.ApiKeySerializer, **errors(400)},
                   description="``tokens_per_minute`` and ``max_concurrent_requests``: the key's own (null = the "
                               "plan's); the lower of the key's and the plan's applies. ``budget``: what the key may "
                               "spend per day, week or month (UTC), e.g. {\"amount\": \"5.00\", \"period\": "
                               "\"day\"}; past it requests get 429 insufficient_quota until the period resets; null "
                               "removes it. Fields left out stay.")
    def patch(self, request, slug: str, key_id: int):
        api_key = key_or_404(self.actor, key_id)
        form = api.KeyUpdateSerializer(data=request.data)  # every field optional; a budget given is whole
        form.is_valid(raise_exception=True)
        limits = dict(form.validated_data)
        if "budget" in limits:
            budget = limits.pop("budget")
            set_key_budget(api_key, amount=budget and budget["amount"], period=budget and budget["period"])
        if limits:
            set_key_rate_limits(api_key, **limits)
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
