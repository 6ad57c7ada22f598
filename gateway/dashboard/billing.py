"""The billing page: plan, limits and this month's use, upgrades (Stripe Checkout), the portal,
recent invoices and the past-due banner. The forms post to billing's own endpoints
(/api/billing/checkout and /api/billing/portal), which check the role again."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Sum
from django.shortcuts import render
from django.utils import timezone

from billing import stripe_api
from billing.models import Plan, PlanChange, Subscription, SubscriptionStatus
from billing.stripe_api import BillingError, InvoiceSummary
from billing.subscriptions import grace_ends
from billing.views import can_manage_billing
from gateway.dashboard.tenancy import tenant_page
from gateway.models import ApiKey, Membership, Tenant
from usage.models import DailyUsage, MonthlySpend


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


def first_of_month(today: date) -> date:
    return today.replace(day=1)


def month_use(tenant: Tenant, month: date) -> dict:
    ledger = MonthlySpend.objects.filter(tenant=tenant, month=month).first()
    totals = DailyUsage.objects.filter(tenant=tenant, day__gte=month).aggregate(
        requests=Sum("requests"), images=Sum("images"), video_seconds=Sum("video_seconds"),
        characters=Sum("characters"), audio_seconds=Sum("audio_seconds"),
    )
    return {
        "month": month,
        "spend": ledger.settled if ledger else Decimal(0),
        "reserved": ledger.reserved if ledger else Decimal(0),
        "requests": totals["requests"] or 0,
        "images": totals["images"] or 0,
        "video_seconds": totals["video_seconds"] or Decimal(0),
        "characters": totals["characters"] or 0,
        "transcription_minutes": ((totals["audio_seconds"] or Decimal(0)) / 60).quantize(Decimal("0.1")),
    }


def allowances(tenant: Tenant, plan: Plan, use: dict) -> list[Allowance]:
    rows = [
        Allowance("Spend this month", use["spend"].quantize(Decimal("0.0001")), plan.monthly_spend_limit, "USD"),
        Allowance("API keys (active)", ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True).count(),
                  plan.max_keys),
        Allowance("Members", Membership.objects.filter(tenant=tenant).count(), plan.max_members),
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
    subscription = Subscription.objects.select_related("plan").get(tenant=tenant)
    plan = subscription.plan
    configured = stripe_api.is_configured()
    use = month_use(tenant, first_of_month(timezone.now().date()))
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
        "history": PlanChange.objects.filter(tenant=tenant).select_related("from_plan", "to_plan")[:10],
        "invoices": invoices,
        "invoices_error": invoices_error,
        "checkout": request.GET.get("checkout", ""),
    })
