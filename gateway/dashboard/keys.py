"""The API keys page: create (the raw key shown once), list, set a key's rate limits, revoke."""

from datetime import UTC, datetime, time, timedelta
from fnmatch import fnmatchcase

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.alert_models import BudgetPeriod
from billing.entitlements import models_on_plan
from gateway.access import get_api_key_for_tenant, get_api_keys_for_tenant
from gateway.api_keys import KeyLimitReached, issue_api_key, revoke_api_key, set_key_rate_limits
from gateway.dashboard.budgets import key_standings
from gateway.dashboard.tenancy import can_manage_all_keys, forbidden, tenant_page, tenant_url
from gateway.models import ApiKey, Membership


class KeyRateLimitsForm(forms.Form):
    """A key's own rate limits; empty = the plan's (the lower of the two applies)."""

    tokens_per_minute = forms.IntegerField(
        label="Tokens per minute", required=False, min_value=1, max_value=2**31 - 1,
        help_text="Optional. Prompt and output tokens per minute; empty = the plan's, and the lower applies.")
    max_concurrent_requests = forms.IntegerField(
        label="Requests at once", required=False, min_value=1, max_value=2**31 - 1,
        help_text="Optional. Requests in flight at once (a stream until it ends); empty = the plan's.")

    def limits(self) -> dict[str, int | None]:
        return {name: self.cleaned_data[name] for name in KeyRateLimitsForm.base_fields}


class KeyForm(KeyRateLimitsForm):
    name = forms.CharField(label="Name", max_length=100)
    expires_on = forms.DateField(
        label="Expires on", required=False, widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. The key stops working at the end of this day (UTC).",
    )
    allowed_models = forms.CharField(
        label="Allowed models", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Optional. Model ids or patterns like openai/*, one per line or separated by commas; "
                  "empty = every model the plan allows.",
    )

    management = forms.BooleanField(
        label="Management API access", required=False,
        help_text="Also lets the key call the management API (/api/) as an admin of this tenant.",
    )

    def __init__(self, *args, plan_model_ids: list[str], may_grant_management: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan_model_ids = plan_model_ids
        self.may_grant_management = may_grant_management

    def clean_management(self) -> bool:
        if self.cleaned_data["management"] and not self.may_grant_management:
            raise forms.ValidationError("Only owners and admins create keys with management API access.")
        return self.cleaned_data["management"]

    def scopes(self) -> list[str]:
        return ["inference", "management"] if self.cleaned_data["management"] else ["inference"]

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day < timezone.now().date():
            raise forms.ValidationError("That day is past: choose today or a later day, or leave it empty.")
        return day

    def clean_allowed_models(self) -> list[str]:
        raw = self.cleaned_data["allowed_models"].replace(",", "\n")
        patterns = list(dict.fromkeys(p.strip() for p in raw.splitlines() if p.strip()))
        unmatched = [p for p in patterns if not any(fnmatchcase(m, p) for m in self.plan_model_ids)]
        if unmatched:
            raise forms.ValidationError(
                f"No model on your plan matches {', '.join(unmatched)}: see the Models page for the ids.")
        return patterns

    def expires_at(self) -> datetime | None:
        day = self.cleaned_data["expires_on"]
        return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC) if day else None


def key_status(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def applied_limit(own: int | None, plan_value: int | None) -> str:
    """The limit that applies, the lower of the key's and the plan's, and whose it is."""
    if own is not None and (plan_value is None or own < plan_value):
        return f"{own:,}"
    return "none" if plan_value is None else f"{plan_value:,} (plan)"


def can_revoke(membership: Membership, key: ApiKey) -> bool:
    """Owners and admins revoke any key; everyone else the keys they created."""
    return can_manage_all_keys(membership) or key.created_by_id == membership.user_id


def render_keys(request, membership: Membership, form: KeyForm, *, issued=None, status: int = 200):
    tenant = membership.tenant
    plan = tenant.subscription.plan
    now = timezone.now()
    keys = get_api_keys_for_tenant(tenant)
    budgets = key_standings(keys)  # each key's budget, set in its row (gateway/dashboard/budgets.py)
    rows = [{"key": k, "status": key_status(k, now), "can_revoke": can_revoke(membership, k), "budget": budgets.get(k.pk),
             "tokens_per_minute": applied_limit(k.tokens_per_minute, plan.tokens_per_minute),
             "concurrent": applied_limit(k.max_concurrent_requests, plan.max_concurrent_requests)} for k in keys]
    response = render(request, "dashboard/keys.html", {
        "form": form, "rows": rows, "plan": plan, "issued": issued, "may_set_limits": can_manage_all_keys(membership),
        "active_count": sum(1 for k in keys if k.revoked_at is None), "periods": BudgetPeriod.choices,
    }, status=status)
    if issued is not None:
        response["Cache-Control"] = "no-store"  # the raw key must not outlive this page
    return response


@tenant_page("keys")
def keys_page(request, membership: Membership):
    plan = membership.tenant.subscription.plan
    may_grant = can_manage_all_keys(membership)
    if request.method != "POST":
        return render_keys(request, membership, KeyForm(plan_model_ids=[], may_grant_management=may_grant))
    form = KeyForm(request.POST, plan_model_ids=[m.public_id for m in models_on_plan(plan)],
                   may_grant_management=may_grant)
    if not form.is_valid():
        return render_keys(request, membership, form, status=400)
    try:
        issued = issue_api_key(membership.tenant, name=form.cleaned_data["name"], created_by=request.user,
                               expires_at=form.expires_at(), allowed_models=form.cleaned_data["allowed_models"],
                               scopes=form.scopes(), **form.limits())
    except KeyLimitReached as exc:
        form.add_error(None, str(exc))
        return render_keys(request, membership, form, status=409)
    fresh = KeyForm(plan_model_ids=[], may_grant_management=may_grant)
    return render_keys(request, membership, fresh, issued=issued, status=201)


@require_POST
@tenant_page("keys")
def revoke_key(request, membership: Membership, key_id: int):
    try:
        key = get_api_key_for_tenant(membership.tenant, key_id)
    except ApiKey.DoesNotExist as exc:
        raise Http404("No such key.") from exc
    if not can_revoke(membership, key):
        return forbidden(request, membership, "Members revoke only the keys they created; ask an owner or admin.")
    revoke_api_key(key)
    messages.success(request, f"Key {key.name} ({key.display_prefix}) was revoked: it stops working now.")
    return HttpResponseRedirect(tenant_url(membership.tenant.slug, "keys/"))


@require_POST
@tenant_page("keys")
def key_rate_limits(request, membership: Membership, key_id: int):
    """Owners and admins set a key's own rate limits (empty: the plan's)."""
    try:
        key = get_api_key_for_tenant(membership.tenant, key_id)
    except ApiKey.DoesNotExist as exc:
        raise Http404("No such key.") from exc
    if not can_manage_all_keys(membership):
        return forbidden(request, membership, "Owners and admins set a key's rate limits.")
    form = KeyRateLimitsForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{form.fields[name].label}: {' '.join(problems)}" for name, problems in form.errors.items())
        messages.error(request, f"Key {key.name} keeps its limits. {errors}")
        return HttpResponseRedirect(tenant_url(membership.tenant.slug, "keys/"))
    set_key_rate_limits(key, **form.limits())
    messages.success(request, f"Key {key.name} ({key.display_prefix}) has new rate limits: they apply within seconds.")
    return HttpResponseRedirect(tenant_url(membership.tenant.slug, "keys/"))
