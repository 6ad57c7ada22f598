"""Budgets in the dashboard: a key's (a form in its row on the keys page) and end users' (the
budgets page). Everyone sees them; owners and admins change them (billing.spend_budgets, as the
management API does). Past a budget, requests get 429 insufficient_quota until its period resets.

    POST     /t/<slug>/keys/<id>/budget/          a key's budget: amount and period, or remove
    GET/POST /t/<slug>/budgets/                   end users' budgets; add one, or change one
    POST     /t/<slug>/budgets/<id>/remove/       remove one
"""

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from billing.alert_models import BudgetPeriod
from billing.budget_models import SpendBudget
from billing.spend_budgets import (
    InvalidBudget,
    remove_budget,
    save_end_user_budget,
    set_key_budget,
    standings,
)
from gateway.access import (
    get_api_key_for_tenant,
    get_end_user_budget_for_tenant,
    get_end_user_budgets_for_tenant,
)
from gateway.dashboard.tenancy import can_manage_all_keys, forbidden, tenant_page, tenant_url
from gateway.models import ApiKey, Membership

WHO_CHANGES = "Owners and admins change budgets."


def key_standings(keys: list[ApiKey]) -> dict:
    """Key id -> its budget's Standing, for the keys that have a budget (loaded with them)."""
    budgets = [budget for key in keys if (budget := getattr(key, "spend_budget", None)) is not None]
    return {standing.budget.api_key_id: standing for standing in standings(budgets)}


@require_POST
@tenant_page("keys")
def key_budget(request, membership: Membership, key_id: int):
    if not can_manage_all_keys(membership):
        return forbidden(request, membership, WHO_CHANGES)
    try:
        key = get_api_key_for_tenant(membership.tenant, key_id)
    except ApiKey.DoesNotExist as exc:
        raise Http404("No such key.") from exc
    removing = "remove" in request.POST
    try:
        budget = set_key_budget(key, amount=None if removing else request.POST.get("amount", ""),
                                period=request.POST.get("period", ""))
    except InvalidBudget as exc:
        messages.error(request, f"Key {key.name}: {exc}")
    else:
        messages.success(request, f"Key {key.name}: no budget." if budget is None else
                         f"Key {key.name}: a budget of ${budget.amount} per {budget.period}.")
    return HttpResponseRedirect(tenant_url(membership.tenant.slug, "keys/"))


def render_budgets(request, membership: Membership, *, form: dict | None = None, error: str = "",
                   status: int = 200):
    budgets = get_end_user_budgets_for_tenant(membership.tenant)
    return render(request, "dashboard/budgets.html", {
        "rows": standings(budgets), "form": form or {"period": BudgetPeriod.DAY}, "error": error,
        "periods": BudgetPeriod.choices, "may_change": can_manage_all_keys(membership),
    }, status=status)


@tenant_page("budgets")
def budgets_page(request, membership: Membership):
    if request.method != "POST":
        return render_budgets(request, membership)
    if not can_manage_all_keys(membership):
        return forbidden(request, membership, WHO_CHANGES)
    form = {name: request.POST.get(name, "") for name in ("end_user", "amount", "period")}
    try:
        budget = save_end_user_budget(membership.tenant, **form)
    except InvalidBudget as exc:
        return render_budgets(request, membership, form=form, error=str(exc), status=400)
    messages.success(request, f"End user {budget.subject}: a budget of ${budget.amount} per {budget.period}.")
    return HttpResponseRedirect(tenant_url(membership.tenant.slug, "budgets/"))


@require_POST
@tenant_page("budgets")
def remove_end_user_budget(request, membership: Membership, budget_id: int):
    if not can_manage_all_keys(membership):
        return forbidden(request, membership, WHO_CHANGES)
    try:
        budget = get_end_user_budget_for_tenant(membership.tenant, budget_id)
    except SpendBudget.DoesNotExist as exc:
        raise Http404("No such budget.") from exc
    remove_budget(budget)
    messages.success(request, f"End user {budget.subject}: no budget.")
    return HttpResponseRedirect(tenant_url(membership.tenant.slug, "budgets/"))
