"""Settle an admitted request exactly once: one UsageRecord, the ledger, the daily rollup.

    reserve(...)   add the most a request can cost to this month's ledger, atomically and only
                   while settled + reserved + amount stays within the cap (called by admission)
    settle(...)    in one transaction: insert the UsageRecord (unique request_id), swap the
                   reservation for the actual cost in the ledger, upsert the daily rollup

settle() runs in the request's ``finally`` (also on errors and disconnects); a Reservation
settles once (a flag here, the unique request_id in the database behind it).
"""

import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from providers.pricing import TokenPrices, cost_of
from providers.types import Usage
from usage.models import Ending, MonthlySpend, Outcome, UsageRecord

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Reservation:
    request_id: str
    tenant_id: int
    api_key_id: int | None
    model: str
    provider: str
    capability: str
    prices: TokenPrices
    amount: Decimal
    month: date
    settled: bool = False


@dataclass(slots=True)
class Settlement:
    """What actually happened, filled in as the request runs."""

    upstream_model: str = ""
    streamed: bool = False
    usage: Usage = field(default_factory=Usage)
    usage_estimated: bool = False
    latency_ms: int = 0
    ttft_ms: int | None = None
    http_status: int = 200
    error_type: str = ""
    ending: str = Ending.COMPLETED


def month_of(day: date) -> date:
    return day.replace(day=1)


def reserve(tenant_id: int, amount: Decimal, cap: Decimal | None) -> date | None:
    """Reserve ``amount`` on this month's ledger; None when that would pass ``cap``.

    One conditional UPDATE decides, so two concurrent requests can never both squeeze under
    the cap. The month's row is created on its first request.
    """
    month = month_of(timezone.now().date())
    ledger = MonthlySpend.objects.filter(tenant_id=tenant_id, month=month)
    if cap is not None:
        ledger = ledger.filter(settled__lte=cap - amount - F("reserved"))
    if ledger.update(reserved=F("reserved") + amount):
        return month
    # Refused, or the month's row does not exist yet: make sure it does, then decide again.
    MonthlySpend.objects.get_or_create(tenant_id=tenant_id, month=month)
    if ledger.update(reserved=F("reserved") + amount):
        return month
    return None


ROLLUP_UPSERT = """
INSERT INTO usage_dailyusage
    (tenant_id, day, model, requests, errors, input_tokens, output_tokens, reasoning_tokens, cached_tokens, cost)
VALUES (%s, %s, %s, 1, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, day, model) DO UPDATE SET
    requests = usage_dailyusage.requests + 1,
    errors = usage_dailyusage.errors + excluded.errors,
    input_tokens = usage_dailyusage.input_tokens + excluded.input_tokens,
    output_tokens = usage_dailyusage.output_tokens + excluded.output_tokens,
    reasoning_tokens = usage_dailyusage.reasoning_tokens + excluded.reasoning_tokens,
    cached_tokens = usage_dailyusage.cached_tokens + excluded.cached_tokens,
    cost = usage_dailyusage.cost + excluded.cost
"""


def settle(reservation: Reservation, settlement: Settlement) -> UsageRecord | None:
    """Record the request once. Returns the record, or None if it was already settled."""
    if reservation.settled:
        return None
    reservation.settled = True
    usage = settlement.usage
    cost = cost_of(reservation.prices, usage)
    failed = settlement.http_status >= 400
    now = timezone.now()
    try:
        with transaction.atomic():
            record = UsageRecord.objects.create(
                request_id=reservation.request_id,
                tenant_id=reservation.tenant_id,
                api_key_id=reservation.api_key_id,
                created_at=now,
                model=reservation.model,
                provider=reservation.provider,
                upstream_model=settlement.upstream_model,
                capability=reservation.capability,
                streamed=settlement.streamed,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cached_tokens=usage.cached_tokens,
                usage_estimated=settlement.usage_estimated,
                cost=cost,
                reserved=reservation.amount,
                latency_ms=settlement.latency_ms,
                ttft_ms=settlement.ttft_ms,
                outcome=Outcome.ERROR if failed else Outcome.OK,
                http_status=settlement.http_status,
                error_type=settlement.error_type,
                ending=settlement.ending,
            )
            MonthlySpend.objects.filter(tenant_id=reservation.tenant_id, month=reservation.month).update(
                reserved=F("reserved") - reservation.amount, settled=F("settled") + cost
            )
            with connection.cursor() as cursor:
                cursor.execute(ROLLUP_UPSERT, [
                    reservation.tenant_id, now.date(), reservation.model, int(failed), usage.input_tokens,
                    usage.output_tokens, usage.reasoning_tokens, usage.cached_tokens, cost,
                ])
    except IntegrityError:
        if UsageRecord.objects.filter(request_id=reservation.request_id).exists():
            log.warning("request %s was already settled; not counted twice", reservation.request_id)
            return None
        raise
    return record


def release_amount(tenant_id: int, month: date, amount: Decimal) -> None:
    """Give back a reservation whose request never got as far as being settled."""
    MonthlySpend.objects.filter(tenant_id=tenant_id, month=month).update(reserved=F("reserved") - amount)
