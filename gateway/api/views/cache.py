"""A tenant's answer cache: its settings with what the plan offers and the last 30 days' hit rate
and savings; a key's own switch. Everyone reads; owners and admins change (gateway.cache_settings,
the dashboard's workflows)."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from caching.stats import STATS_DAYS, cache_summary
from gateway.access import (
    get_api_key_for_tenant,
    get_cache_settings_for_tenant,
    get_key_cache_switches_for_tenant,
    get_subscription_for_tenant,
)
from gateway.api import serializers as api
from gateway.api.errors import errors
from gateway.api.permissions import EVERYONE, MANAGERS
from gateway.api.views.tenants import TenantView
from gateway.cache_settings import key_mode, set_key_cache_mode, update_cache_settings
from gateway.models import ApiKey


def settings_body(tenant) -> dict:
    plan = get_subscription_for_tenant(tenant).plan
    settings = get_cache_settings_for_tenant(tenant)
    return {"available": plan.cache_enabled, "semantic_available": plan.semantic_cache_enabled,
            "hit_price": plan.cache_hit_price, "enabled": settings.enabled, "ttl_seconds": settings.ttl_seconds,
            "any_temperature": settings.any_temperature, "semantic": settings.semantic,
            "stats": cache_summary(tenant.pk, days=STATS_DAYS)}


class CacheSettingsView(TenantView):
    roles = {"GET": (EVERYONE, "reading the cache settings"), "PATCH": (MANAGERS, "changing the cache settings")}

    @extend_schema(summary="Answer cache settings, hit rate and savings", tags=["cache"],
                   responses={200: api.CacheSettingsSerializer, **errors()},
                   description=f"The cache is off until turned on. ``stats`` covers the last {STATS_DAYS} days.")
    def get(self, request, slug: str):
        return Response(api.CacheSettingsSerializer(settings_body(self.actor.tenant)).data)

    @extend_schema(summary="Change the answer cache settings", tags=["cache"],
                   request=api.CacheSettingsUpdateSerializer, responses={200: api.CacheSettingsSerializer,
                                                                        **errors(400)},
                   description="Settings a plan does not offer are kept, and take effect on a plan that does "
                               "(``available``, ``semantic_available``).")
    def patch(self, request, slug: str):
        form = api.CacheSettingsUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        if form.validated_data:
            update_cache_settings(self.actor.tenant, **form.validated_data)
        return Response(api.CacheSettingsSerializer(settings_body(self.actor.tenant)).data)


class KeyCacheView(TenantView):
    roles = {"GET": (EVERYONE, "reading a key's cache setting"), "PUT": (MANAGERS, "changing a key's cache setting")}

    def key(self, key_id: int) -> ApiKey:
        try:
            return get_api_key_for_tenant(self.actor.tenant, key_id)
        except ApiKey.DoesNotExist as exc:
            raise exceptions.NotFound(f"No API key {key_id} in {self.actor.tenant.slug}.") from exc

    @extend_schema(summary="A key's cache switch", tags=["cache"], responses={200: api.KeyCacheSerializer, **errors()})
    def get(self, request, slug: str, key_id: int):
        key = self.key(key_id)
        switch = get_key_cache_switches_for_tenant(self.actor.tenant).get(key.pk)
        return Response(api.KeyCacheSerializer({"key_id": key.pk, "mode": key_mode(switch)}).data)

    @extend_schema(summary="Switch the cache for one key", tags=["cache"], request=api.KeyCacheSerializer,
                   responses={200: api.KeyCacheSerializer, **errors(400)},
                   description="'on' or 'off' whatever the tenant's setting; 'tenant' to follow it again.")
    def put(self, request, slug: str, key_id: int):
        key = self.key(key_id)
        form = api.KeyCacheSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        set_key_cache_mode(key, form.validated_data["mode"])
        return Response(api.KeyCacheSerializer({"key_id": key.pk, "mode": form.validated_data["mode"]}).data)
