"""The answer cache page, /t/<slug>/cache/: the last 30 days' hit rate and money saved, the
tenant's settings and each key's own switch. Everyone sees it; owners and admins change it
(gateway.cache_settings, as the management API does).

    GET/POST /t/<slug>/cache/                    the tenant's settings
    POST     /t/<slug>/cache/keys/<id>/          one key's switch: as the tenant, on or off
"""

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from caching.policy import ttl_too_long
from caching.stats import STATS_DAYS, cache_summary
from gateway.access import (
    get_api_key_for_tenant,
    get_api_keys_for_tenant,
    get_cache_settings_for_tenant,
    get_key_cache_switches_for_tenant,
    get_subscription_for_tenant,
)
from gateway.cache_settings import KEY_MODES, key_mode, set_key_cache_mode, update_cache_settings
from gateway.dashboard.tenancy import can_manage_all_keys, forbidden, tenant_page, tenant_url
from gateway.models import ApiKey, Membership


class CacheForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Answer repeated requests from the cache")
    ttl_seconds = forms.IntegerField(min_value=1, label="Keep answers for (seconds)")
    any_temperature = forms.BooleanField(
        required=False, label="Cache every request, not only deterministic ones (temperature 0 or a seed)")
    semantic = forms.BooleanField(
        required=False, label="Also answer requests whose last message means nearly the same (semantic)")

    def clean_ttl_seconds(self) -> int:
        ttl = self.cleaned_data["ttl_seconds"]
        if problem := ttl_too_long(ttl):
            raise forms.ValidationError(problem)
        return ttl


def render_cache(request, membership: Membership, form: CacheForm | None = None, *, status: int = 200):
    tenant = membership.tenant
    current = get_cache_settings_for_tenant(tenant)
    switches = get_key_cache_switches_for_tenant(tenant)
    keys = [key for key in get_api_keys_for_tenant(tenant) if key.revoked_at is None]
    summary = cache_summary(tenant.pk, days=STATS_DAYS)
    return render(request, "dashboard/cache.html", {
        "plan": get_subscription_for_tenant(tenant).plan,
        "form": form or CacheForm(initial={name: getattr(current, name) for name in CacheForm.base_fields}),
        "may_change": can_manage_all_keys(membership),
        "summary": summary,
        "hit_percent": None if summary["hit_rate"] is None else round(summary["hit_rate"] * 100, 1),
        "keys": [{"key": key, "mode": key_mode(switches.get(key.pk))} for key in keys],
        "modes": KEY_MODES,
    }, status=status)


@tenant_page("cache")
def cache_page(request, membership: Membership):
    if request.method != "POST":
        return render_cache(request, membership)
    if not can_manage_all_keys(membership):
        return forbidden(request, membership, "Owners and admins change the cache settings.")
    form = CacheForm(request.POST)
    if not form.is_valid():
        return render_cache(request, membership, form, status=400)
    update_cache_settings(membership.tenant, **form.cleaned_data)
    messages.success(request, "Cache settings saved.")
    return HttpResponseRedirect(tenant_url(membership.tenant.slug, "cache/"))


@require_POST
@tenant_page("cache")
def key_cache(request, membership: Membership, key_id: int):
    if not can_manage_all_keys(membership):
        return forbidden(request, membership, "Owners and admins change the cache settings.")
    try:
        key = get_api_key_for_tenant(membership.tenant, key_id)
    except ApiKey.DoesNotExist as exc:
        raise Http404("No such key.") from exc
    mode = request.POST.get("mode", "")
    if mode not in KEY_MODES:
        messages.error(request, f"Choose one of: {', '.join(KEY_MODES)}.")
    else:
        set_key_cache_mode(key, mode)
        messages.success(request, f"Key {key.name}: cache {'as the tenant' if mode == 'tenant' else mode}.")
    return HttpResponseRedirect(tenant_url(membership.tenant.slug, "cache/"))
