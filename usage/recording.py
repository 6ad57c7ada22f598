"""Settle an admitted request exactly once: one UsageRecord, the ledger, the daily rollup.

    reserve(...)   add the most a request can cost to this month's ledger, atomically and only
                   while settled + reserved + amount stays within the cap, and keep an
                   OpenReservation row for it (called by admission)
    settle(...)    insert the UsageRecord (unique request_id), close the open reservation and
                   swap what it held for the actual cost in the ledger, upsert the daily rollup
                   (usage/batches.py: the same for many requests at once, as the writer does)
    release(...)   close an open reservation without a record (the request never ran)
    reserve_media(...)   reserve() for a media request: the money and its media units (images,
                   seconds of video, characters, seconds of audio) in the same one UPDATE, also
                   within the plan's monthly unit limits; settle and release move them back
    (usage/recovery.py: checkpoints of requests in flight, and the sweep of those whose process died)

All run on the ledger writer (usage/writer.py), inside its transaction. settle() runs from the
request's ``finally`` (also on errors and disconnects); the unique request_id makes a repeat a
no-op, and the open row makes sure a reservation is given back exactly once, by whichever of
settle, release or the sweeper gets to it first.

They run on every /v1 request, so they are plain SQL that SQLite and PostgreSQL share, not
ORM queries: compiling an ORM update or a 22-field insert costs more than the database does.
The tables and columns are the models' own (usage/models.py).
"""

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Protocol

from django.db import connection, transaction
from django.utils import timezone

from providers.pricing import TokenPrices, ToolPrices, cost_of, tool_cost
from providers.types import Usage
from usage.models import Ending, UsageRecord

if TYPE_CHECKING:
    from usage.leases import Lease


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
    flat_cost: Decimal | None = None  # the plan's fee for a call made with the tenant's own key
    # Media: the units held on the month's counters against the plan's limits (reserve_media).
    # Settlement reads what is still held from the open row, so a job settled after a restart
    # needs only a non-None value here.
    units: Usage | None = None
    search_price: Decimal = Decimal(0)  # per web search made (0 with the tenant's own search key)
    tool_prices: ToolPrices = ToolPrices()  # the plan's, for the gateway's own tools (web_fetch, code_interpreter)
    known_cost: Decimal | None = None  # a cost already worked out (a crashed request's last checkpoint)
    # Held against this process's budget lease (usage/budget.py): the money is the lease's, and
    # the request's open row is written in the background from ``admitted_at``.
    lease: "Lease | None" = None
    admitted_at: datetime | None = None
    end_user: str = ""  # who the request was for (the client's end user), recorded as is
    tags: dict[str, str] = field(default_factory=dict)  # and the client's tags (its metadata)
    # What holds spend for it beside its tenant's cap (budgets of its key or end user, prepaid
    # credits: billing.spend_holds), settled in the same transaction as its record.
    limits: "HeldLimits | None" = None
    # The key's rate limits taken at admission (billing.rate_limits.RateHold), settled by the meter's exit.
    rate_hold: object | None = None

    def cost_of(self, usage: Usage, model_cost: Decimal | None = None) -> Decimal:
        """``model_cost``: what the model calls cost when each was priced at its own model's prices
        (a tool loop's rounds served by different models of the chain); else ``usage`` at ``prices``."""
        if self.known_cost is not None:
            return self.known_cost
        # A search made, a page read or code run is billed whatever happened next: it was done.
        searches = usage.web_searches * self.search_price + tool_cost(self.tool_prices, usage)
        if self.flat_cost is None:
            return (cost_of(self.prices, usage) if model_cost is None else model_cost) + searches
        # The fee is for a call that did something: one that failed before any token is free.
        return (self.flat_cost if usage.input_tokens or usage.output_tokens else Decimal(0)) + searches


class HeldLimits(Protocol):
    """Spend held for requests on limits below or beside their tenant's cap, kept by another app
    (billing.spend_holds). ``settle_held`` is called inside the settlement's transaction with
    (request id, cost) of each request whose record that transaction wrote: it moves what each
    held to its cost, with plain SQL on ``cursor``. It must not commit, call the network, or
    fail a settlement for anything but the database failing."""

    def settle_held(self, cursor, settled: list[tuple[str, Decimal]]) -> None: ...


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
    model_cost: Decimal | None = None  # a tool loop's model calls, each at its model's prices (Reservation.cost_of)

    def snapshot(self) -> "Settlement":
        """A copy, its usage copied too: what the meter hands the writer thread. Positional, from
        the fields in order (a fifth of dataclasses.replace's CPU, twice a request)."""
        copied = Settlement(*SETTLEMENT_FIELDS(self))
        copied.usage = Usage(*USAGE_FIELDS(self.usage))
        return copied


SETTLEMENT_FIELDS = attrgetter(*(item.name for item in fields(Settlement)))
USAGE_FIELDS = attrgetter(*(item.name for item in fields(Usage)))


def month_of(day: date) -> date:
    return day.replace(day=1)


# Money parameters are CAST: SQLite receives Decimals as text, and text compares greater than
# any number there. A sum is ROUNDed to the columns' 10 places before it is compared: SQLite adds
# them as floats, so a request that exactly fits would be refused (PostgreSQL's NUMERIC is exact).
RESERVE = "UPDATE usage_monthlyspend SET reserved = reserved + CAST(%s AS NUMERIC) WHERE tenant_id = %s AND month = %s"
UNDER_CAP = " AND ROUND(settled + reserved + CAST(%s AS NUMERIC), 10) <= CAST(%s AS NUMERIC)"
RESERVE_UNDER_CAP = RESERVE + UNDER_CAP
OPEN_MONTH = """
INSERT INTO usage_monthlyspend (tenant_id, month, settled, reserved) VALUES (%s, %s, 0, 0)
ON CONFLICT (tenant_id, month) DO NOTHING
"""


OPEN_RESERVATION = """
INSERT INTO usage_openreservation (request_id, tenant_id, month, amount, created_at, api_key_id, model, provider,
                                   capability)
VALUES (%s, %s, %s, CAST(%s AS NUMERIC), %s, %s, %s, %s, %s)
"""
CLOSE_RESERVATION = "DELETE FROM usage_openreservation WHERE request_id = %s"
GIVE_BACK = "UPDATE usage_monthlyspend SET reserved = reserved - CAST(%s AS NUMERIC) WHERE tenant_id = %s AND month = %s"


def reserve(request_id: str, tenant_id: int, amount: Decimal, cap: Decimal | None,
            who: tuple[int | None, str, str, str] = (None, "", "", "")) -> date | None:
    """Reserve ``amount`` on this month's ledger; None when that would pass ``cap``.

    One conditional UPDATE decides, so two concurrent requests can never both squeeze under
    the cap. The month's row is created on its first request. ``who`` (api key id, model,
    provider, capability) goes on the open row, for the record of a request whose process dies.
    """
    now = timezone.now()
    month = month_of(now.date())
    ops = connection.ops
    month_value = ops.adapt_datefield_value(month)
    if cap is None:
        sql, params = RESERVE, [amount, tenant_id, month_value]
    else:
        sql, params = RESERVE_UNDER_CAP, [amount, tenant_id, month_value, amount, cap]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if not cursor.rowcount:
            # Refused, or the month's row does not exist yet: make sure it does, then decide again.
            cursor.execute(OPEN_MONTH, [tenant_id, month_value])
            cursor.execute(sql, params)
            if not cursor.rowcount:
                return None
        cursor.execute(OPEN_RESERVATION, [request_id, tenant_id, month_value, amount,
                                          ops.adapt_datetimefield_value(now), *who])
    return month


MEDIA_UNITS = ("images", "video_seconds", "characters", "audio_seconds")
RESERVE_MEDIA = """
UPDATE usage_monthlyspend SET reserved = reserved + CAST(%s AS NUMERIC), images = images + %s,
    video_seconds = video_seconds + CAST(%s AS NUMERIC), characters = characters + %s,
    audio_seconds = audio_seconds + CAST(%s AS NUMERIC)
WHERE tenant_id = %s AND month = %s"""
UNIT_UNDER_LIMIT = " AND {unit} + CAST(%s AS NUMERIC) <= CAST(%s AS NUMERIC)"
OPEN_MEDIA_RESERVATION = """
INSERT INTO usage_openreservation
    (request_id, tenant_id, month, amount, created_at, images, video_seconds, characters, audio_seconds)
VALUES (%s, %s, %s, CAST(%s AS NUMERIC), %s, %s, CAST(%s AS NUMERIC), %s, CAST(%s AS NUMERIC))
"""
LEDGER_ROW = f"""
SELECT settled, reserved, {", ".join(MEDIA_UNITS)} FROM usage_monthlyspend WHERE tenant_id = %s AND month = %s
"""
CLOSE_MEDIA_RESERVATION = f"DELETE FROM usage_openreservation WHERE request_id = %s RETURNING {', '.join(MEDIA_UNITS)}"
MOVE_UNITS = """
UPDATE usage_monthlyspend SET images = images + %s, video_seconds = video_seconds + CAST(%s AS NUMERIC),
    characters = characters + %s, audio_seconds = audio_seconds + CAST(%s AS NUMERIC)
WHERE tenant_id = %s AND month = %s
"""


class LimitReached(Exception):
    """reserve_media refused: ``limit`` is "spend" (the cap) or the unit whose monthly limit the
    request would pass (one of MEDIA_UNITS); ``used`` is what the month has used of it so far
    (made plus in flight)."""

    def __init__(self, limit: str, used: Decimal):
        super().__init__(f"{limit} limit reached ({used} used)")
        self.limit = limit
        self.used = used


def units_of(usage: Usage) -> list:
    return [getattr(usage, unit) for unit in MEDIA_UNITS]


def reserve_media(request_id: str, tenant_id: int, amount: Decimal, cap: Decimal | None, units: Usage,
                  limits: dict[str, Decimal | int | None]) -> date:
    """Reserve ``amount`` and the media ``units`` on this month's ledger, in one conditional
    UPDATE: within ``cap`` and, for each unit the request uses, within ``limits[unit]`` (the
    most per month; None = no limit). Concurrent requests can pass neither. Raises LimitReached."""
    now = timezone.now()
    month_value = connection.ops.adapt_datefield_value(month_of(now.date()))
    sql = RESERVE_MEDIA
    params = [amount, *units_of(units), tenant_id, month_value]
    checked = []
    for unit in MEDIA_UNITS:
        limit = limits.get(unit)
        if limit is not None and getattr(units, unit):
            sql += UNIT_UNDER_LIMIT.format(unit=unit)
            params += [getattr(units, unit), limit]
            checked.append(unit)
    if cap is not None:
        sql += UNDER_CAP
        params += [amount, cap]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if not cursor.rowcount:
            cursor.execute(OPEN_MONTH, [tenant_id, month_value])
            cursor.execute(sql, params)
            if not cursor.rowcount:
                raise limit_reached(cursor, tenant_id, month_value, amount, cap, units, limits, checked)
        cursor.execute(OPEN_MEDIA_RESERVATION, [request_id, tenant_id, month_value, amount,
                                                connection.ops.adapt_datetimefield_value(now), *units_of(units)])
    return month_of(now.date())


def limit_reached(cursor, tenant_id: int, month_value, amount: Decimal, cap: Decimal | None, units: Usage,
                  limits: dict, checked: list[str]) -> LimitReached:
    """Which limit refused a reservation (read after the fact: only refusals pay for it)."""
    cursor.execute(LEDGER_ROW, [tenant_id, month_value])
    settled, reserved, *used = [Decimal(str(value)) for value in cursor.fetchone()]
    for unit, so_far in zip(MEDIA_UNITS, used, strict=True):
        if unit in checked and so_far + Decimal(str(getattr(units, unit))) > Decimal(str(limits[unit])):
            return LimitReached(unit, so_far)
    return LimitReached("spend", settled + reserved)


def close_reservation(cursor, reservation: "Reservation") -> Decimal:
    """Delete the open row; what it held, or nothing if settle, release or the sweeper did first."""
    cursor.execute(CLOSE_RESERVATION, [reservation.request_id])
    return reservation.amount if cursor.rowcount else Decimal(0)


def close_media_reservation(cursor, reservation: "Reservation") -> Usage | None:
    """close_reservation for a media reservation: the units it still held, or None if settle,
    release or the sweeper closed it first."""
    cursor.execute(CLOSE_MEDIA_RESERVATION, [reservation.request_id])
    row = cursor.fetchone()
    return None if row is None else units_from(row)


def units_from(row) -> Usage:
    """Media units as read from the database (SQLite hands back decimals as floats)."""
    images, video_seconds, characters, audio_seconds = row
    return Usage(images=int(images), video_seconds=Decimal(str(video_seconds)), characters=int(characters),
                 audio_seconds=Decimal(str(audio_seconds)))


def move_units(cursor, tenant_id: int, month_value, held: Usage | None, used: Usage) -> None:
    """Swap the units a reservation held for those the request used, on the month's counters."""
    held = held or Usage()
    delta = [now - before for now, before in zip(units_of(used), units_of(held), strict=True)]
    if any(delta):
        cursor.execute(MOVE_UNITS, [*delta, tenant_id, month_value])


def release(reservation: "Reservation") -> None:
    """Give back a reservation whose request never ran (the client left during admission). One
    held against a lease only has its open row closed: its money stays with the lease."""
    month_value = connection.ops.adapt_datefield_value(reservation.month)
    with connection.cursor() as cursor:
        if reservation.units is not None:
            held_units = close_media_reservation(cursor, reservation)
            held = reservation.amount if held_units is not None else Decimal(0)
            move_units(cursor, reservation.tenant_id, month_value, held_units, Usage())
        else:
            held = close_reservation(cursor, reservation)
        if held and reservation.lease is None:
            cursor.execute(GIVE_BACK, [held, reservation.tenant_id, month_value])


def settle(reservation: Reservation, settlement: Settlement) -> UsageRecord | None:
    """Record the request once, in a transaction of its own (or the caller's). Returns the record
    (unsaved instance with the stored values), or None if this request id was already settled.
    The ledger writer settles many at once (usage/batches.py); this is a batch of one."""
    from usage.batches import settle_all  # batches builds on this module

    with transaction.atomic():
        return settle_all([(reservation, settlement)])[0]
