"""Change a tenant's answer-cache settings and its keys' own switches (the dashboard and the
management API both call these). The hot path reads them with the key (gateway/api_keys.py), so
each change drops the tenant's keys from this process's key cache: it applies at once here and
within KEY_CACHE_SECONDS in every other worker."""

from django.db import transaction

from caching.models import KeyCache, TenantCache
from gateway.api_keys import forget_keys_on_commit
from gateway.models import ApiKey

KEY_MODES = ("tenant", "on", "off")  # as the tenant's setting, or the key's own
SETTINGS = ("enabled", "ttl_seconds", "any_temperature", "semantic")


def key_mode(switch: bool | None) -> str:
    return "tenant" if switch is None else "on" if switch else "off"


def forget_tenant_keys(tenant) -> None:
    forget_keys_on_commit(list(ApiKey.objects.filter(tenant=tenant).values_list("prefix", flat=True)))


@transaction.atomic
def update_cache_settings(tenant, **changes) -> TenantCache:
    """Set any of SETTINGS on the tenant's cache settings (created on the first change)."""
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise TypeError(f"unknown cache settings: {', '.join(sorted(unknown))}")
    settings, _ = TenantCache.objects.select_for_update().get_or_create(tenant=tenant)
    for name, value in changes.items():
        setattr(settings, name, value)
    settings.save()
    forget_tenant_keys(tenant)
    return settings


@transaction.atomic
def set_key_cache_mode(api_key: ApiKey, mode: str) -> None:
    """``mode``: "tenant" (the key follows its tenant's setting), "on" or "off"."""
    if mode not in KEY_MODES:
        raise ValueError(f"mode must be one of {', '.join(KEY_MODES)}, not {mode!r}")
    if mode == "tenant":
        KeyCache.objects.filter(api_key=api_key).delete()
    else:
        KeyCache.objects.update_or_create(api_key=api_key, defaults={"enabled": mode == "on"})
    forget_keys_on_commit([api_key.prefix])
