"""Metered overage: spend past a plan's included amount, sent to a Stripe Billing Meter.

A plan with ``allows_overage`` includes ``included_monthly_spend`` in its price; admission
still stops at ``monthly_spend_limit`` (the ceiling, or none). report_overage() runs
periodically (``manage.py report_overage``) and, per tenant and calendar month (UTC):

    overage = sum(UsageRecord.cost) - included        the usage records are the truth; the
                                                     MonthlySpend ledger is checked against them
    units   = floor(overage / overage_unit_amount)    whole meter units, never rounded up
    send the units not yet reported as one meter event, after recording it (OverageReport)

The row is written before the event is sent and marked sent after: a crash between the two
leaves an unsent row that the next run sends again with the same identifier, which Stripe
counts once. A run that finds nothing new sends nothing, so two runs never send twice.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Max, Sum
from django.utils import timezone

from billing import stripe_api
from billing.models import OverageReport, Subscription
from billing.stripe_api import BillingError
from billing.subscriptions import lock_subscription
from usage.models import MonthlySpend, UsageRecord

log = logging.getLogger(__name__)


@dataclass
class OverageRun:
    sent: list[OverageReport] = field(default_factory=list)
    failed: list[tuple[OverageReport, str]] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    end = next_month(month)
    return datetime(month.year, month.month, 1, tzinfo=UTC), datetime(end.year, end.month, 1, tzinfo=UTC)


def month_spend(tenant_id: int, month: date) -> Decimal:
    start, end = month_bounds(month)
    total = UsageRecord.objects.filter(tenant_id=tenant_id, created_at__gte=start, created_at__lt=end).aggregate(
        total=Sum("cost"))["total"]
    return Decimal(total or 0)


def overage_units(spend: Decimal, *, included: Decimal, unit: Decimal) -> int:
    if spend <= included or unit <= 0:
        return 0
    return int(((spend - included) / unit).to_integral_value(rounding=ROUND_FLOOR))


def check_ledger(tenant_id: int, month: date, spend: Decimal) -> str | None:
    ledger = MonthlySpend.objects.filter(tenant_id=tenant_id, month=month).values_list("settled", flat=True).first()
    # SQLite keeps decimals as floats: a difference under a millionth of a dollar is storage, not money.
    if ledger is not None and abs(Decimal(ledger) - spend) > Decimal("0.000001"):
        return f"tenant {tenant_id} {month:%Y-%m}: ledger says {ledger}, usage records {spend}"
    return None


def record_new_overage(subscription: Subscription, month: date, *, now: datetime) -> OverageReport | None:
    """The month's units not yet reported, as an unsent row; None when there are none."""
    plan = subscription.plan
    with transaction.atomic():
        lock_subscription(subscription.tenant_id)  # one run at a time decides per tenant
        spend = month_spend(subscription.tenant_id, month)
        total = overage_units(spend, included=plan.included_monthly_spend, unit=plan.overage_unit_amount)
        reported = OverageReport.objects.filter(tenant_id=subscription.tenant_id, month=month).aggregate(
            most=Max("total_units"))["most"] or 0
        if total <= reported:
            return None
        _, month_end = month_bounds(month)
        try:
            return OverageReport.objects.create(
                tenant_id=subscription.tenant_id, month=month,
                identifier=f"tollgate-overage-{subscription.tenant_id}-{month:%Y%m}-{total}",
                event_name=plan.overage_meter_event_name, stripe_customer_id=subscription.stripe_customer_id,
                units=total - reported, total_units=total, overage=(spend - plan.included_monthly_spend),
                timestamp=min(now, month_end - timedelta(seconds=1)),
            )
        except IntegrityError:
            return None


def send_report(report: OverageReport, run: OverageRun) -> None:
    try:
        stripe_api.send_meter_event(event_name=report.event_name, customer_id=report.stripe_customer_id,
                                    value=report.units, identifier=report.identifier, at=report.timestamp)
    except BillingError as exc:
        log.error("overage %s not sent (%s); the next run sends it again", report.identifier, exc)
        run.failed.append((report, str(exc)))
        return
    OverageReport.objects.filter(pk=report.pk, sent_at__isnull=True).update(sent_at=timezone.now())
    run.sent.append(report)


def report_overage(*, now: datetime | None = None) -> OverageRun:
    """Send every tenant's unreported overage of this month and the last (its tail lands after
    the month ends), and resend anything a previous run recorded but could not send."""
    now = now or timezone.now()
    run = OverageRun()
    for report in OverageReport.objects.filter(sent_at__isnull=True).order_by("created_at", "pk"):
        send_report(report, run)
    this_month = month_start(now.date())
    last_month = month_start(this_month - timedelta(days=1))
    subscriptions = (Subscription.objects.select_related("plan")
                     .filter(plan__allows_overage=True).exclude(plan__overage_meter_event_name="")
                     .exclude(stripe_customer_id=""))
    for subscription in subscriptions:
        for month in (last_month, this_month):
            mismatch = check_ledger(subscription.tenant_id, month, month_spend(subscription.tenant_id, month))
            if mismatch:
                run.mismatches.append(mismatch)
            report = record_new_overage(subscription, month, now=now)
            if report is not None:
                send_report(report, run)
    return run
