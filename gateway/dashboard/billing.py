"""The billing page: plan, limits and this month's use, upgrades (Stripe Checkout), the portal,
recent invoices, the past-due banner and credits (gateway/dashboard/credits.py). The forms post
to billing's own endpoints (/api/billing/checkout and /api/billing/portal, and the credits'),
which check the role again."""

from dataclasses import dataclass
from decimal import Decimal

from django.shortcuts import render

from billing import stripe_api
from billing.models import Plan, Subscription, SubscriptionStatus
from billing.stripe_api import BillingError, InvoiceSummary
from billing.subscriptions import grace_ends
from gateway.access import (
    count_active_api_keys_for_tenant,
    count_members_for_tenant,
    get_plan_changes_for_tenant,
    get_subscription_for_tenant,
)
from gateway.dashboard.billing_actions import can_manage_billing
from gateway.dashboard.credits import credits_context
from gateway.dashboard.tenancy import tenant_page
from gateway.models import Membership, Tenant
from usage import summaries


@dataclass(frozen=True, slots=True)
class Allowance:
    """One plan limit and how much of it this month (or right now) uses."""

    label: str
    used: Decimal | int
    limit: Decimal | int | None  # None: no limit
    unit: str = ""

    @property
    def percent(self) -> int | None:
        if not self.limit:
            return None
        return min(100, int(Decimal(self.used) * 100 / Decimal(self.limit)))


def month_use(tenant: Tenant) -> dict:
    month = summaries.month_summary(tenant.pk)
    return {
        "month": month["month"],
        "spend": month["cost"],
        "reserved": month["reserved"],
        "requests": month["requests"],
        "images": month["images"],
        "video_seconds": month["video_seconds"] or Decimal(0),
        "characters": month["characters"],
        "transcription_minutes": (month["audio_seconds"] / 60).quantize(Decimal("0.1")),
    }


def allowances(tenant: Tenant, plan: Plan, use: dict) -> list[Allowance]:
    rows = [
        Allowance("Spend this month", use["spend"].quantize(Decimal("0.0001")), plan.monthly_spend_limit, "USD"),
        Allowance("API keys (active)", count_active_api_keys_for_tenant(tenant), plan.max_keys),
        Allowance("Members", count_members_for_tenant(tenant), plan.max_members),
    ]
    media = [
        ("Images", use["images"], plan.images_per_month, ""),
        ("Video", use["video_seconds"], plan.video_seconds_per_month, "seconds"),
        ("Speech", use["characters"], plan.speech_characters_per_month, "characters"),
        ("Transcription", use["transcription_minutes"], plan.transcription_minutes_per_month, "minutes"),
    ]
    rows += [Allowance(label, used, limit, unit) for label, used, limit, unit in media if used or limit is not None]
    return rows


# Stripe amounts are in the currency's smallest unit; these currencies have no cents.
ZERO_DECIMAL_CURRENCIES = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
                           "VUV", "XAF", "XOF", "XPF"}


def invoice_amount(invoice: InvoiceSummary) -> Decimal:
    cents = invoice.amount_paid if invoice.status == "paid" else invoice.amount_due
    if invoice.currency in ZERO_DECIMAL_CURRENCIES:
        return Decimal(cents)
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def recent_invoices(subscription: Subscription) -> tuple[list[dict], str]:
    """The customer's invoices and, when Stripe could not be asked, what the page says instead."""
    if not subscription.stripe_customer_id:
        return [], ""
    try:
        invoices = stripe_api.list_invoices(customer_id=subscription.stripe_customer_id)
    except BillingError:
        return [], "Invoices cannot be loaded from Stripe right now; try again in a minute."
    return [{"invoice": invoice, "amount": invoice_amount(invoice)} for invoice in invoices], ""


@tenant_page("billing")
def billing_page(request, membership: Membership):
    tenant = membership.tenant
    subscription = get_subscription_for_tenant(tenant)
    plan = subscription.plan
    configured = stripe_api.is_configured()
    use = month_use(tenant)
    invoices, invoices_error = recent_invoices(subscription) if configured else ([], "")
    return render(request, "dashboard/billing.html", {
        "subscription": subscription,
        "plan": plan,
        "usage": use,
        "allowances": allowances(tenant, plan, use),
        "configured": configured,
        "can_manage": can_manage_billing(membership),
        "is_past_due": subscription.status == SubscriptionStatus.PAST_DUE,
        "grace_ends": grace_ends(subscription, plan),
        "offers": [p for p in Plan.objects.exclude(stripe_price_id="") if p.pk != plan.pk] if configured else [],
        "history": get_plan_changes_for_tenant(tenant, limit=10),
        "invoices": invoices,
        "invoices_error": invoices_error,
        "checkout": request.GET.get("checkout", ""),
        "credits": credits_context(membership, subscription),
        "credits_return": request.GET.get("credits", ""),
        "card_return": request.GET.get("card", ""),
    })
