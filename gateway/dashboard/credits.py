"""Credits on the billing page: the balance and ledger with receipts, buying credits (Stripe
Checkout, payment mode), saving the card auto top-up charges (setup mode) and the auto top-up
settings.

    POST /api/billing/credits/checkout   {"tenant", "amount"}  -> {"url"} or a 303 to Stripe
    POST /api/billing/credits/card       {"tenant"}            -> {"url"} or a 303 to Stripe
    POST /t/<slug>/billing/auto-top-up/  the page's form: enabled, threshold, amount

All three are for the tenant's owner and billing members (billing_actions.can_manage_billing).
"""

from decimal import Decimal

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.views.decorators.http import require_POST

from billing import credits, stripe_api
from billing.credit_checkout import (
    InvalidAmount,
    amounts_of,
    credit_plan_for,
    set_auto_top_up,
    start_card_setup,
    start_credit_checkout,
)
from billing.models import Subscription
from billing.subscriptions import CheckoutRefused, Redirect
from gateway.access import get_credit_account_for_tenant, get_credit_entries_for_tenant
from gateway.dashboard.billing_actions import InvalidRequest, billing_action, can_manage_billing
from gateway.dashboard.tenancy import forbidden, tenant_page, tenant_url
from gateway.models import Membership
from gateway.proxies import public_base_url

LEDGER_ROWS = 50


def credits_context(membership: Membership, subscription: Subscription) -> dict:
    """What the billing page shows of credits (the section is hidden when the plan sells none
    and the ledger is empty)."""
    tenant = membership.tenant
    plan = credit_plan_for(subscription)
    entries = get_credit_entries_for_tenant(tenant, limit=LEDGER_ROWS)
    account = get_credit_account_for_tenant(tenant)
    return {
        "shown": plan is not None or bool(entries) or subscription.plan.prepaid,
        "plan": plan,
        "moves_plan": plan is not None and plan.pk != subscription.plan_id,
        "amounts": amounts_of(plan),
        "balance": account.balance if account else Decimal(0),
        # Settled usage is debited from the balance periodically (billing/credit_debits.py); until
        # then it, and what requests in flight hold, already count against what is left to spend.
        "undebited": account.spent_undebited if account else Decimal(0),
        "available": account.balance - account.spent_undebited - account.reserved if account else Decimal(0),
        "account": account,
        "entries": entries,
    }


@billing_action
def buy_credits(request, membership: Membership, fields: dict) -> Redirect:
    try:
        return start_credit_checkout(membership.tenant, fields.get("amount", ""), email=request.user.email,
                                     base_url=public_base_url(request))
    except InvalidAmount as exc:
        raise InvalidRequest(str(exc)) from exc


@billing_action
def save_card(request, membership: Membership, fields: dict) -> Redirect:
    return start_card_setup(membership.tenant, email=request.user.email, base_url=public_base_url(request))


@require_POST
@tenant_page("billing")
def auto_top_up(request, membership: Membership):
    if not can_manage_billing(membership):
        return forbidden(request, membership, f"Only the owner or a billing member of {membership.tenant.name} "
                                              "can change auto top-up.")
    tenant = membership.tenant
    enabled = request.POST.get("enabled") in ("on", "true", "1")
    try:
        account = set_auto_top_up(tenant, enabled=enabled, threshold=request.POST.get("threshold", ""),
                                  amount=request.POST.get("amount", ""))
    except (InvalidAmount, CheckoutRefused) as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(tenant_url(tenant.slug, "billing/"))
    if not account.auto_top_up:
        messages.success(request, "Auto top-up is off.")
        return HttpResponseRedirect(tenant_url(tenant.slug, "billing/"))
    messages.success(request, f"Auto top-up is on: below ${account.top_up_threshold}, "
                              f"{account.card_label or 'the saved card'} is charged ${account.top_up_amount}.")
    if stripe_api.is_configured():
        # Already below the threshold: that is a crossing too, charged now rather than later.
        credits.top_up_if_low(tenant.pk)
    return HttpResponseRedirect(tenant_url(tenant.slug, "billing/"))
