"""Nothing admitted goes unrecorded after a crash.

    checkpoint(points)   note on each open reservation what its request has produced so far
                         (input and output tokens, and what that costs); every process writes
                         its requests in flight every RESERVATION_CHECKPOINT_SECONDS
    sweep_stale_reservations()   settle every open reservation not heard of for
                         RESERVATION_TTL_SECONDS: its process died (kill -9, a lost host) or its
                         settlement was lost. A chat request's becomes a usage record ending
                         ``interrupted``, billed at its last checkpoint and flagged estimated; a
                         media reservation (a video job's: the worker follows those) is released.

Both run on the ledger writer (usage/writer.py). The sweep runs on the writer's own schedule
(RESERVATION_SWEEP_SECONDS), whether or not traffic arrives, in every gateway and worker
process; settle()'s unique request_id makes the sweep and a late settlement exclusive, so a
request is recorded exactly once whoever gets there first.
"""

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from providers.types import Usage
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
SELECT request_id, tenant_id, month, amount, api_key_id, model, provider, capability, input_tokens, output_tokens,
    cost, {", ".join(MEDIA_UNITS)}
FROM usage_openreservation WHERE COALESCE(checkpoint_at, created_at) < %s ORDER BY created_at
"""


def checkpoint(points: list[Checkpoint]) -> None:
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.executemany(CHECKPOINT, [(now, point.input_tokens, point.output_tokens, point.cost, point.request_id)
                                        for point in points])


def sweep_stale_reservations() -> int:
    """Settle or release every open reservation older than RESERVATION_TTL_SECONDS since its
    last sign of life (module docstring). Returns how many."""
    cutoff = timezone.now() - timedelta(seconds=settings.RESERVATION_TTL_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(STALE_RESERVATIONS, [connection.ops.adapt_datetimefield_value(cutoff)])
        stale = cursor.fetchall()
    for row in stale:
        request_id, tenant_id, month, amount, api_key_id, model, provider, capability, *rest = row
        if capability == "chat":
            record_interrupted(request_id, tenant_id, month, amount, api_key_id, model, provider, *rest[:3])
        else:
            release_stale(request_id, tenant_id, month, amount, rest[3:])
    return len(stale)


def record_interrupted(request_id: str, tenant_id: int, month, amount, api_key_id: int | None, model: str,
                       provider: str, input_tokens: int, output_tokens: int, cost) -> None:
    reservation = Reservation(
        request_id=request_id, tenant_id=tenant_id, api_key_id=api_key_id, model=model, provider=provider,
        capability="chat", prices=None, amount=Decimal(str(amount)), month=month_of(month),
        known_cost=Decimal(str(cost)))
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    record = settle(reservation, Settlement(
        usage=usage, usage_estimated=True, streamed=True, http_status=200 if output_tokens else 502,
        error_type="interrupted", ending=Ending.INTERRUPTED))
    if record is not None:
        log.warning("request %s was interrupted (its process died): recorded at its last checkpoint, %s USD",
                    request_id, record.cost)


def release_stale(request_id: str, tenant_id: int, month, amount, units: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(CLOSE_RESERVATION, [request_id])
        if cursor.rowcount:
            cursor.execute(GIVE_BACK, [amount, tenant_id, month])
            move_units(cursor, tenant_id, month, units_from(units), Usage())
            log.warning("released the stale reservation of request %s (%s USD): it was never settled",
                        request_id, amount)


def month_of(value) -> date:
    """A month as the database hands it back (SQLite: text)."""
    return date.fromisoformat(value[:10]) if isinstance(value, str) else value
