"""Settle an admitted request exactly once: one UsageRecord, the ledger, the daily rollup.

    reserve(...)   add the most a request can cost to this month's ledger, atomically and only
                   while settled + reserved + amount stays within the cap (called by admission)
    settle(...)    in one transaction: insert the UsageRecord (unique request_id), swap the
                   reservation for the actual cost in the ledger, upsert the daily rollup

settle() runs in the request's ``finally`` (also on errors and disconnects); a Reservation
settles once (a flag here, the unique request_id in the database behind it).

Both run on every /v1 request, so they are plain SQL that SQLite and PostgreSQL share, not
ORM queries: compiling an ORM update or a 22-field insert costs more than the database does.
The tables and columns are the models' own (usage/models.py).
"""

import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from providers.pricing import TokenPrices, cost_of
from providers.types import Usage
from usage.models import Ending, Outcome, UsageRecord

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


# Money parameters are CAST: SQLite receives Decimals as text, and text compares greater than
# any number there.
RESERVE = "UPDATE usage_monthlyspend SET reserved = reserved + CAST(%s AS NUMERIC) WHERE tenant_id = %s AND month = %s"
RESERVE_UNDER_CAP = RESERVE + " AND settled + reserved + CAST(%s AS NUMERIC) <= CAST(%s AS NUMERIC)"
OPEN_MONTH = """
INSERT INTO usage_monthlyspend (tenant_id, month, settled, reserved) VALUES (%s, %s, 0, 0)
ON CONFLICT (tenant_id, month) DO NOTHING
"""


def reserve(tenant_id: int, amount: Decimal, cap: Decimal | None) -> date | None:
    """Reserve ``amount`` on this month's ledger; None when that would pass ``cap``.

    One conditional UPDATE decides, so two concurrent requests can never both squeeze under
    the cap. The month's row is created on its first request.
    """
    month = month_of(timezone.now().date())
    month_value = connection.ops.adapt_datefield_value(month)
    if cap is None:
        sql, params = RESERVE, [amount, tenant_id, month_value]
    else:
        sql, params = RESERVE_UNDER_CAP, [amount, tenant_id, month_value, amount, cap]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount:
            return month
        # Refused, or the month's row does not exist yet: make sure it does, then decide again.
        cursor.execute(OPEN_MONTH, [tenant_id, month_value])
        cursor.execute(sql, params)
        return month if cursor.rowcount else None


RECORD_FIELDS = [
    "request_id", "tenant_id", "api_key_id", "created_at", "model", "provider", "upstream_model", "capability",
    "streamed", "input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "cache_write_tokens",
    "usage_estimated", "cost",
    "reserved", "latency_ms", "ttft_ms", "outcome", "http_status", "error_type", "ending",
]
INSERT_RECORD = f"""
INSERT INTO usage_usagerecord ({", ".join(RECORD_FIELDS)}) VALUES ({", ".join(["%s"] * len(RECORD_FIELDS))})
ON CONFLICT (request_id) DO NOTHING
"""
SETTLE_LEDGER = """
UPDATE usage_monthlyspend SET reserved = reserved - CAST(%s AS NUMERIC), settled = settled + CAST(%s AS NUMERIC)
WHERE tenant_id = %s AND month = %s
"""
ROLLUP_UPSERT = """
INSERT INTO usage_dailyusage
    (tenant_id, day, model, requests, errors, input_tokens, output_tokens, reasoning_tokens, cached_tokens,
     cache_write_tokens, cost)
VALUES (%s, %s, %s, 1, %s, %s, %s, %s, %s, %s, CAST(%s AS NUMERIC))
ON CONFLICT (tenant_id, day, model) DO UPDATE SET
    requests = usage_dailyusage.requests + 1,
    errors = usage_dailyusage.errors + excluded.errors,
    input_tokens = usage_dailyusage.input_tokens + excluded.input_tokens,
    output_tokens = usage_dailyusage.output_tokens + excluded.output_tokens,
    reasoning_tokens = usage_dailyusage.reasoning_tokens + excluded.reasoning_tokens,
    cached_tokens = usage_dailyusage.cached_tokens + excluded.cached_tokens,
    cache_write_tokens = usage_dailyusage.cache_write_tokens + excluded.cache_write_tokens,
    cost = usage_dailyusage.cost + excluded.cost
"""


def settle(reservation: Reservation, settlement: Settlement) -> UsageRecord | None:
    """Record the request once. Returns the record (unsaved instance with the stored values),
    or None if this request id was already settled."""
    if reservation.settled:
        return None
    reservation.settled = True
    usage = settlement.usage
    failed = settlement.http_status >= 400
    record = UsageRecord(
        request_id=reservation.request_id, tenant_id=reservation.tenant_id, api_key_id=reservation.api_key_id,
        created_at=timezone.now(), model=reservation.model, provider=reservation.provider,
        upstream_model=settlement.upstream_model, capability=reservation.capability, streamed=settlement.streamed,
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, reasoning_tokens=usage.reasoning_tokens,
        cached_tokens=usage.cached_tokens, cache_write_tokens=usage.cache_write_tokens,
        usage_estimated=settlement.usage_estimated,
        cost=cost_of(reservation.prices, usage), reserved=reservation.amount, latency_ms=settlement.latency_ms,
        ttft_ms=settlement.ttft_ms, outcome=Outcome.ERROR if failed else Outcome.OK,
        http_status=settlement.http_status, error_type=settlement.error_type, ending=settlement.ending,
    )
    ops = connection.ops
    values = [getattr(record, name) for name in RECORD_FIELDS]
    values[RECORD_FIELDS.index("created_at")] = ops.adapt_datetimefield_value(record.created_at)
    day = ops.adapt_datefield_value(record.created_at.date())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(INSERT_RECORD, values)
        if not cursor.rowcount:
            log.warning("request %s was already settled; not counted twice", reservation.request_id)
            return None
        cursor.execute(SETTLE_LEDGER, [reservation.amount, record.cost, reservation.tenant_id,
                                       ops.adapt_datefield_value(reservation.month)])
        cursor.execute(ROLLUP_UPSERT, [reservation.tenant_id, day, reservation.model, int(failed),
                                       usage.input_tokens, usage.output_tokens, usage.reasoning_tokens,
                                       usage.cached_tokens, usage.cache_write_tokens, record.cost])
    return record


def release_amount(tenant_id: int, month: date, amount: Decimal) -> None:
    """Give back a reservation whose request never got as far as being settled."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE usage_monthlyspend SET reserved = reserved - CAST(%s AS NUMERIC) "
                       "WHERE tenant_id = %s AND month = %s",
                       [amount, tenant_id, connection.ops.adapt_datefield_value(month)])
