"""Settlement in batches: the settlements waiting on the ledger writer, in a few statements.

    settle_all(items, opens)   record each (reservation, settlement) of ``items`` exactly once.
                        Returns each item's UsageRecord, or None when its request id was already
                        settled (before, or earlier in the same batch). ``opens``: reservations
                        held against a budget lease whose open row is still to be written.

However many requests a batch holds, it makes:
    one INSERT of the open rows of requests admitted from a budget lease (usage/leases.py),
        leaving out those whose settlement is in the same batch (they would be deleted at once)
    one INSERT of the usage records, ON CONFLICT (request_id) DO NOTHING RETURNING request_id:
        the unique request id keeps each request to one record, whoever settles it first
    one DELETE of the open reservations of the records written, RETURNING the units they held
    one UPDATE per budget lease that paid for records (its amount less their costs), or, for a
        lease whose last request this is, one DELETE giving back what it has left
    one UPDATE per tenant-month ledger row, with the summed deltas
    for requests that hold spend beside the cap (Reservation.limits: key and end-user budgets,
        prepaid credits), what settle_held does (billing.spend_holds: a DELETE of their holds and
        an UPDATE per budget period and credit account)
    one INSERT .. ON CONFLICT DO UPDATE of the daily rollups, a row per (tenant, day, model)
Rows are written in key order, so writers on several nodes take the same locks in the same order.

It runs inside the caller's transaction (the ledger writer's, or recording.settle's) and is plain
SQL that SQLite and PostgreSQL share; a statement's text depends only on its row count, so each
is compiled once per size (cached). The tables and columns are the models' own (usage/models.py).
"""

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

from django.db import connection, transaction
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from usage import leases
from usage.direct_sql import direct_cursor
from usage.metrics import record_settled
from usage.models import Outcome, UsageRecord
from usage.recording import MEDIA_UNITS, Reservation, Settlement, units_from, units_of

log = logging.getLogger(__name__)

ZERO = Decimal(0)

RECORD_FIELDS = [  # UsageRecord's columns but its id, in the model's order (checked below)
    "request_id", "tenant_id", "api_key_id", "created_at", "model", "provider", "upstream_model", "capability",
    "streamed", "input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "cache_write_tokens",
    "images", "video_seconds", "characters", "audio_seconds", "media_detail", "web_searches", "web_fetches",
    "search_units", "code_seconds", "byok", "usage_estimated", "cost", "reserved", "latency_ms", "ttft_ms",
    "outcome", "http_status", "error_type", "ending", "end_user", "tags",
]
REQUEST_ID = RECORD_FIELDS.index("request_id")
CREATED_AT = RECORD_FIELDS.index("created_at")
TAGS = RECORD_FIELDS.index("tags")
# Money is CAST: SQLite receives Decimals as text, and text compares greater than any number there.
MONEY_FIELDS = {"video_seconds", "audio_seconds", "code_seconds", "cost", "reserved"}


def record_row() -> str:
    """One record's placeholders: money CAST (above), tags as JSON (PostgreSQL's jsonb takes text only cast)."""
    json_cast = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    return "(" + ", ".join("CAST(%s AS NUMERIC)" if name in MONEY_FIELDS else json_cast if name == "tags" else "%s"
                           for name in RECORD_FIELDS) + ")"

OPEN_FIELDS = ["request_id", "tenant_id", "month", "amount", "created_at", "api_key_id", "model", "provider",
               "capability", "lease_token"]
OPEN_ROW = "(%s, %s, %s, CAST(%s AS NUMERIC), %s, %s, %s, %s, %s, %s)"

ROLLUP_COUNTS = ["requests", "errors", "input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens",
                 "cache_write_tokens", "images", "video_seconds", "characters", "audio_seconds", "web_searches", "web_fetches",
                 "code_seconds", "cost"]
ROLLUP_ROW = "(%s, %s, %s, " + ", ".join(
    "CAST(%s AS NUMERIC)" if name in MONEY_FIELDS else "%s" for name in ROLLUP_COUNTS) + ")"

SETTLE_LEDGER = """
UPDATE usage_monthlyspend SET settled = settled + CAST(%s AS NUMERIC), reserved = reserved - CAST(%s AS NUMERIC),
    images = images + %s, video_seconds = video_seconds + CAST(%s AS NUMERIC), characters = characters + %s,
    audio_seconds = audio_seconds + CAST(%s AS NUMERIC)
WHERE tenant_id = %s AND month = %s"""
ROWS_PER_STATEMENT = 256  # 32 parameters a record: well under SQLite's and PostgreSQL's limits


@cache
def insert_records_sql(rows: int) -> str:
    return (f"INSERT INTO usage_usagerecord ({', '.join(RECORD_FIELDS)}) VALUES "
            f"{', '.join([record_row()] * rows)} ON CONFLICT (request_id) DO NOTHING RETURNING request_id")


@cache
def insert_open_rows_sql(rows: int) -> str:
    return (f"INSERT INTO usage_openreservation ({', '.join(OPEN_FIELDS)}) VALUES {', '.join([OPEN_ROW] * rows)} "
            "ON CONFLICT (request_id) DO NOTHING")


@cache
def close_open_rows_sql(rows: int) -> str:
    return (f"DELETE FROM usage_openreservation WHERE request_id IN ({', '.join(['%s'] * rows)}) "
            f"RETURNING request_id, {', '.join(MEDIA_UNITS)}")


@cache
def upsert_rollups_sql(rows: int) -> str:
    added = ", ".join(f"{name} = usage_dailyusage.{name} + excluded.{name}" for name in ROLLUP_COUNTS)
    return (f"INSERT INTO usage_dailyusage (tenant_id, day, model, {', '.join(ROLLUP_COUNTS)}) VALUES "
            f"{', '.join([ROLLUP_ROW] * rows)} ON CONFLICT (tenant_id, day, model) DO UPDATE SET {added}")


def chunks(rows: list, size: int = ROWS_PER_STATEMENT):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


@dataclass(slots=True)
class LedgerDelta:
    """What a batch moves on one tenant-month ledger row."""

    settled: Decimal = ZERO
    given_back: Decimal = ZERO  # off ``reserved``
    units: list = field(default_factory=lambda: [0, ZERO, 0, ZERO])

    def move_units(self, moved: list) -> None:
        self.units = [before + more for before, more in zip(self.units, moved, strict=True)]


# A record's values are listed once, in column order (record_values): its INSERT takes them, and
# its model instance is made of them (record_builder).
if [field.attname for field in UsageRecord._meta.concrete_fields] != ["id", *RECORD_FIELDS]:
    raise RuntimeError("usage/batches.py: RECORD_FIELDS must name UsageRecord's columns but its id, in its order")
RECORD_ATTNAMES = ("id", *RECORD_FIELDS)


def record_builder() -> Callable[[list], UsageRecord]:
    """How a batch makes the UsageRecord of a row the INSERT wrote (its id unread: None): as
    ``UsageRecord(None, *row)`` makes it, but with its attributes set at once (8 -> 3 µs a record,
    on the ledger writer's thread). Model.__init__ only sets them, and sends the model's init
    signals: while either has a receiver for UsageRecord, __init__ makes them."""
    if pre_init.has_listeners(UsageRecord) or post_init.has_listeners(UsageRecord):
        return lambda row: UsageRecord(None, *row)
    return written_record


def written_record(row: list) -> UsageRecord:
    record = UsageRecord.__new__(UsageRecord)
    record.__dict__.update(zip(RECORD_ATTNAMES, (None, *row), strict=True))
    record._state = ModelState()
    return record


def record_values(reservation: Reservation, settlement: Settlement, now) -> list:
    """The record's column values, in RECORD_FIELDS' order."""
    usage = settlement.usage
    return [
        reservation.request_id, reservation.tenant_id, reservation.api_key_id, now, reservation.model,
        reservation.provider, settlement.upstream_model, reservation.capability, settlement.streamed,
        usage.input_tokens, usage.output_tokens, usage.reasoning_tokens, usage.cached_tokens, usage.cache_write_tokens,
        usage.images, usage.video_seconds, usage.characters, usage.audio_seconds, usage.media_detail,
        usage.web_searches, usage.web_fetches, usage.search_units, usage.code_seconds,
        reservation.flat_cost is not None, settlement.usage_estimated,
        reservation.cost_of(usage, settlement.model_cost), reservation.amount, settlement.latency_ms,
        settlement.ttft_ms, Outcome.ERROR if settlement.http_status >= 400 else Outcome.OK, settlement.http_status,
        settlement.error_type, settlement.ending, reservation.end_user, reservation.tags,
    ]


def settle_all(items: list[tuple[Reservation, Settlement]],
               opens: list[Reservation] = ()) -> list[UsageRecord | None]:
    """Record each item once, in the caller's transaction (module docstring)."""
    settling = {reservation.request_id for reservation, _ in items}
    unwritten = {reservation.request_id for reservation in opens} & settling  # never needs its open row
    with direct_cursor() as cursor:
        insert_open_rows(cursor, [reservation for reservation in opens if reservation.request_id not in settling])
        if not items:
            return []
        now = timezone.now()
        rows: dict[str, list] = {}
        for reservation, settlement in items:
            if reservation.request_id not in rows:
                rows[reservation.request_id] = record_values(reservation, settlement, now)
        written = insert_records(cursor, list(rows.values()), connection.ops.adapt_datetimefield_value(now))
        kept, build = [], record_builder()
        for reservation, settlement in items:  # a request settled twice in one batch: its first counts
            if reservation.request_id in written:
                written.discard(reservation.request_id)
                kept.append((reservation, settlement, build(rows[reservation.request_id])))
            else:
                log.warning("request %s was already settled; not counted twice", reservation.request_id)
        move_ledgers(cursor, kept, unwritten, closing={reservation.lease for reservation, _ in items
                                                       if reservation.lease is not None and reservation.lease.closing})
        if kept:
            settle_held_limits(cursor, kept)
            upsert_rollups(cursor, kept)
    settled = [(reservation, record) for reservation, _, record in kept]
    transaction.on_commit(lambda: committed(settled))
    results = {record.request_id: record for _, record in settled}
    return [results.pop(reservation.request_id, None) for reservation, _ in items]


def committed(settled: list[tuple[Reservation, UsageRecord]]) -> None:
    for reservation, record in settled:
        record_settled(record)
        if reservation.lease is not None:
            leases.book.settled(reservation.lease, record.request_id, record.cost)


def insert_open_rows(cursor, reservations: list[Reservation]) -> None:
    if not reservations:
        return
    ops = connection.ops
    for chunk in chunks(sorted(reservations, key=lambda reservation: reservation.request_id)):
        params = []
        for reservation in chunk:
            params += [reservation.request_id, reservation.tenant_id, ops.adapt_datefield_value(reservation.month),
                       reservation.amount, ops.adapt_datetimefield_value(reservation.admitted_at or timezone.now()),
                       reservation.api_key_id, reservation.model, reservation.provider, reservation.capability,
                       reservation.lease.token if reservation.lease is not None else ""]
        cursor.execute(insert_open_rows_sql(len(chunk)), params)


def insert_records(cursor, rows: list[list], created_at) -> set[str]:
    """INSERT the records (their record_values), created at ``created_at`` (the batch's, adapted
    for the database once); the request ids actually written (those not settled before)."""
    written: set[str] = set()
    for chunk in chunks(sorted(rows, key=lambda row: row[REQUEST_ID])):
        params = []
        for row in chunk:
            tags = row[TAGS]
            params += row[:CREATED_AT]
            params.append(created_at)
            params += row[CREATED_AT + 1:TAGS]
            params.append(json.dumps(tags) if tags else "{}")
            params += row[TAGS + 1:]
        cursor.execute(insert_records_sql(len(chunk)), params)
        written.update(row[0] for row in cursor.fetchall())
    return written


def close_open_rows(cursor, request_ids: list[str]) -> dict[str, list]:
    """DELETE the open rows; the media units each held, by request id (absent: settle, release
    or the sweeper closed it first)."""
    closed = {}
    for chunk in chunks(sorted(request_ids)):
        cursor.execute(close_open_rows_sql(len(chunk)), chunk)
        closed.update((row[0], units_of(units_from(row[1:]))) for row in cursor.fetchall())
    return closed


def move_ledgers(cursor, kept: list[tuple[Reservation, Settlement, UsageRecord]], unwritten: set[str],
                 closing: set) -> None:
    """Close the open rows (but the ``unwritten``), pay the leases (closing those whose last
    request this is), then one UPDATE per tenant-month with the sums."""
    closed = close_open_rows(cursor, [reservation.request_id for reservation, _, _ in kept
                                      if reservation.request_id not in unwritten])
    deltas: dict[tuple, LedgerDelta] = defaultdict(LedgerDelta)
    costs: dict = {}  # lease -> the costs it pays
    for reservation, settlement, record in kept:
        delta = deltas[(reservation.tenant_id, reservation.month)]
        delta.settled += record.cost
        if reservation.lease is not None:  # the lease holds its money
            costs[reservation.lease] = costs.get(reservation.lease, ZERO) + record.cost
            continue
        held = closed.get(reservation.request_id)
        if held is not None:
            delta.given_back += reservation.amount
        if reservation.units is not None:  # the units used take the place of those it still held
            delta.move_units([used - before for used, before in
                              zip(units_of(settlement.usage), held or [0, ZERO, 0, ZERO], strict=True)])
    for lease in sorted(costs.keys() | closing, key=lambda lease: (lease.tenant_id, lease.token)):
        delta = deltas[(lease.tenant_id, lease.month)]
        delta.given_back += leases.pay(cursor, lease, costs.get(lease, ZERO))
    ops = connection.ops
    for tenant_id, month in sorted(deltas):
        delta = deltas[(tenant_id, month)]
        if delta.settled or delta.given_back or any(delta.units):
            cursor.execute(SETTLE_LEDGER, [delta.settled, delta.given_back, *delta.units, tenant_id,
                                           ops.adapt_datefield_value(month)])


def settle_held_limits(cursor, kept: list[tuple[Reservation, Settlement, UsageRecord]]) -> None:
    """The spend the records' requests held beside the cap, moved to their costs by its keeper."""
    by_keeper: dict = defaultdict(list)
    for reservation, _, record in kept:
        if reservation.limits is not None:
            by_keeper[reservation.limits].append((reservation.request_id, record.cost))
    for keeper, settled in by_keeper.items():
        keeper.settle_held(cursor, settled)


def upsert_rollups(cursor, kept: list[tuple[Reservation, Settlement, UsageRecord]]) -> None:
    ops = connection.ops
    sums: dict[tuple, list] = {}
    for reservation, settlement, record in kept:
        usage = settlement.usage
        key = (reservation.tenant_id, record.created_at.date(), reservation.model)
        counts = [1, int(record.outcome == Outcome.ERROR), usage.input_tokens, usage.output_tokens,
                  usage.reasoning_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.images,
                  usage.video_seconds, usage.characters, usage.audio_seconds, usage.web_searches, usage.web_fetches,
                  usage.code_seconds, record.cost]
        before = sums.get(key)
        sums[key] = counts if before is None else [a + b for a, b in zip(before, counts, strict=True)]
    rows = sorted(sums.items())
    for chunk in chunks(rows):
        params = []
        for (tenant_id, day, model), counts in chunk:
            params += [tenant_id, ops.adapt_datefield_value(day), model, *counts]
        cursor.execute(upsert_rollups_sql(len(chunk)), params)
