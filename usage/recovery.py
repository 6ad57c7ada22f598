"""Nothing admitted goes unrecorded after a crash.

    checkpoint(points)   note on each open reservation what its request has produced so far
                         (input and output tokens, and what that costs); every process writes
                         its requests in flight every RESERVATION_CHECKPOINT_SECONDS
    sweep_stale_reservations()   settle every open reservation not heard of for
                         RESERVATION_TTL_SECONDS: its process died (kill -9, a lost host) or its
                         settlement was lost. A chat request's becomes a usage record ending
                         ``interrupted``, billed at its last checkpoint and flagged estimated; a
                         media reservation (a video job's: the worker follows those) is released.
                         Then give back the budget leases not renewed for BUDGET_LEASE_TTL_SECONDS.
    keep_house()         the writer's round: renew this process's budget leases, give back those
                         it no longer uses, then the sweep

All run on the ledger writer (usage/writer.py), on its own schedule (RESERVATION_SWEEP_SECONDS),
whether or not traffic arrives, in every gateway and worker process; settle()'s unique request_id
makes the sweep and a late settlement exclusive, so a request is recorded exactly once whoever
gets there first. A request held against a lease is swept only once its lease is gone or stale
(its process is dead), in the same transaction that gives the lease back: its cost is paid out
of the lease first, so the ledger's reserved comes back whole.
"""

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from providers.types import Usage
from usage import leases
from usage.leases import Lease, book
from usage.models import Ending
from usage.recording import (
    CLOSE_RESERVATION,
    GIVE_BACK,
    MEDIA_UNITS,
    Reservation,
    Settlement,
    move_units,
    settle,
    units_from,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    request_id: str
    input_tokens: int
    output_tokens: int
    cost: Decimal


CHECKPOINT = """
UPDATE usage_openreservation SET checkpoint_at = %s, input_tokens = %s, output_tokens = %s,
    cost = CAST(%s AS NUMERIC)
WHERE request_id = %s
"""
STALE_RESERVATIONS = f"""
SELECT r.request_id, r.tenant_id, r.month, r.amount, r.api_key_id, r.model, r.provider, r.capability,
    r.input_tokens, r.output_tokens, r.cost, {", ".join("r." + unit for unit in MEDIA_UNITS)}, r.lease_token
FROM usage_openreservation r LEFT JOIN usage_budgetlease l ON l.token = r.lease_token
WHERE COALESCE(r.checkpoint_at, r.created_at) < %s AND (l.id IS NULL OR l.renewed_at < %s)
ORDER BY r.created_at
"""


def checkpoint(points: list[Checkpoint]) -> None:
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.executemany(CHECKPOINT, [(now, point.input_tokens, point.output_tokens, point.cost, point.request_id)
                                        for point in points])


def sweep_stale_reservations() -> int:
    """Settle or release every open reservation older than RESERVATION_TTL_SECONDS since its
    last sign of life, then give back stale leases (module docstring). Returns how many rows."""
    ops = connection.ops
    now = timezone.now()
    cutoff = ops.adapt_datetimefield_value(now - timedelta(seconds=settings.RESERVATION_TTL_SECONDS))
    lease_cutoff = ops.adapt_datetimefield_value(now - timedelta(seconds=settings.BUDGET_LEASE_TTL_SECONDS))
    with connection.cursor() as cursor:
        cursor.execute(STALE_RESERVATIONS, [cutoff, lease_cutoff])
        stale = cursor.fetchall()
    for row in stale:
        request_id, tenant_id, month, amount, api_key_id, model, provider, capability, *rest = row
        lease = lease_of(rest[-1], tenant_id, month)
        if capability == "chat":
            record_interrupted(request_id, tenant_id, month, amount, api_key_id, model, provider, *rest[:3],
                               lease=lease)
        else:
            release_stale(request_id, tenant_id, month, amount, rest[3:-1], lease=lease)
    with connection.cursor() as cursor:
        leases.reclaim_stale(cursor)
    return len(stale)


def keep_house() -> None:
    """The ledger writer's round (module docstring)."""
    leases.renew_held()
    book.forget_stale_holds()
    leases.close(book.to_close())
    sweep_stale_reservations()


def lease_of(token: str, tenant_id: int, month) -> Lease | None:
    """The lease an open row was held against: this process's own, or one to pay out of by token."""
    if not token:
        return None
    return book.find(token) or Lease(tenant_id, month_of(month), None, token=token)


def record_interrupted(request_id: str, tenant_id: int, month, amount, api_key_id: int | None, model: str,
                       provider: str, input_tokens: int, output_tokens: int, cost, *, lease: Lease | None) -> None:
    reservation = Reservation(
        request_id=request_id, tenant_id=tenant_id, api_key_id=api_key_id, model=model, provider=provider,
        capability="chat", prices=None, amount=Decimal(str(amount)), month=month_of(month),
        known_cost=Decimal(str(cost)), lease=lease)
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    record = settle(reservation, Settlement(
        usage=usage, usage_estimated=True, streamed=True, http_status=200 if output_tokens else 502,
        error_type="interrupted", ending=Ending.INTERRUPTED))
    if record is not None:
        log.warning("request %s was interrupted (its process died): recorded at its last checkpoint, %s USD",
                    request_id, record.cost)


def release_stale(request_id: str, tenant_id: int, month, amount, units: list, *, lease: Lease | None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(CLOSE_RESERVATION, [request_id])
        closed = cursor.rowcount
        if closed and lease is None:  # a lease's row: the money stays with the lease
            cursor.execute(GIVE_BACK, [amount, tenant_id, month])
            move_units(cursor, tenant_id, month, units_from(units), Usage())
        if closed:
            log.warning("released the stale reservation of request %s (%s USD): it was never settled",
                        request_id, amount)


def month_of(value) -> date:
    """A month as the database hands it back (SQLite: text)."""
    return date.fromisoformat(value[:10]) if isinstance(value, str) else value
