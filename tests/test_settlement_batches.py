"""Settlements that wait on the ledger writer together are committed together, each request still
recorded exactly once, and one settlement the database refuses fails alone."""

import asyncio
import threading
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models.signals import post_init

from providers.pricing import TokenPrices
from providers.types import Usage
from usage import recording
from usage.models import DailyUsage, MonthlySpend, OpenReservation, UsageRecord
from usage.recording import Reservation, Settlement
from usage.writer import writer

PRICES = TokenPrices(Decimal("1"), Decimal("2"), Decimal("0.5"))
AMOUNT = Decimal("0.01")


def reservation_for(tenant, request_id: str) -> Reservation:
    with transaction.atomic():
        month = recording.reserve(request_id, tenant.pk, AMOUNT, Decimal("10"))
    return Reservation(request_id=request_id, tenant_id=tenant.pk, api_key_id=None, model="demo/echo",
                       provider="demo", capability="chat", prices=PRICES, amount=AMOUNT, month=month)


async def settle_in_one_batch(pairs: list[tuple[Reservation, Settlement]]) -> list:
    """Hold the writer on a job until every settlement is queued behind it, then let them through:
    they are committed as one batch."""
    entered, gate = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        gate.wait(10)

    writer.submit(hold)
    assert await asyncio.to_thread(entered.wait, 5)
    settling = [asyncio.ensure_future(writer.settle(reservation, settlement)) for reservation, settlement in pairs]
    await asyncio.sleep(0)  # each task queues its settlement in its first step
    assert writer.queue_depth() == len(pairs)
    assert not any(task.done() for task in settling)  # nobody hears back before the commit
    gate.set()
    return await asyncio.gather(*settling, return_exceptions=True)


def test_a_batch_records_each_request_once_and_a_refused_settlement_fails_alone(tenant, other_tenant):
    first, second, third, refused = (reservation_for(tenant, f"req_{name}")
                                     for name in ("first", "second", "third", "refused"))
    used = Settlement(usage=Usage(input_tokens=1000, output_tokens=500))
    broken = Settlement(usage=Usage(input_tokens=-1))  # the database's CHECK refuses a negative count

    results = async_to_sync(settle_in_one_batch)(
        [(first, used), (first, used), (second, used), (refused, broken), (third, used)])

    assert [type(result).__name__ for result in results] == [
        "UsageRecord", "NoneType", "UsageRecord", "IntegrityError", "UsageRecord"]
    records = UsageRecord.objects.filter(tenant=tenant)
    assert sorted(records.values_list("request_id", flat=True)) == ["req_first", "req_second", "req_third"]
    assert {record.cost for record in records} == {Decimal("0.002")}  # 1000 in + 500 out at $1/$2 per million
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.settled, ledger.reserved) == (Decimal("0.006"), AMOUNT)  # the refused one still holds its own
    assert list(OpenReservation.objects.values_list("request_id", flat=True)) == ["req_refused"]
    rollup = DailyUsage.objects.get(tenant=tenant)
    assert (rollup.requests, rollup.input_tokens, rollup.output_tokens, rollup.cost) == (
        3, 3000, 1500, Decimal("0.006"))

    # Settled again later (a retry, the sweeper): nothing moves.
    assert async_to_sync(settle_in_one_batch)([(first, used), (third, used)]) == [None, None]
    assert MonthlySpend.objects.get(tenant=tenant).settled == Decimal("0.006")
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
    assert not MonthlySpend.objects.filter(tenant=other_tenant).exists()


def test_a_batch_sums_each_tenants_ledger_and_rollups_apart(tenant, other_tenant):
    mine = [reservation_for(tenant, f"req_mine_{n}") for n in range(4)]
    theirs = [reservation_for(other_tenant, f"req_theirs_{n}") for n in range(2)]
    used = Settlement(usage=Usage(input_tokens=1000))

    results = async_to_sync(settle_in_one_batch)([(reservation, used) for reservation in mine + theirs])

    assert all(isinstance(result, UsageRecord) for result in results)
    for owner, count in ((tenant, 4), (other_tenant, 2)):
        ledger = MonthlySpend.objects.get(tenant=owner)
        assert (ledger.settled, ledger.reserved) == (count * Decimal("0.001"), 0)
        assert DailyUsage.objects.get(tenant=owner).requests == count
        assert UsageRecord.objects.filter(tenant=owner).count() == count
    assert not OpenReservation.objects.exists()


def test_a_batch_writes_every_column_of_the_record_from_its_settlement(tenant):
    """The record's columns come positionally from the reservation and settlement (usage/batches.py):
    each one, given a value no other has, is read back where it belongs, from the database and in
    the record the settlement returns."""
    reservation = reservation_for(tenant, "req_columns")
    reservation.end_user, reservation.tags = "user-7", {"team": "search"}
    usage = Usage(input_tokens=1001, output_tokens=502, reasoning_tokens=3, cached_tokens=4, cache_write_tokens=5,
                  images=6, video_seconds=Decimal("7.5"), characters=8, audio_seconds=Decimal("9.25"),
                  media_detail="1024x1024/hd", web_searches=10, search_units=11, web_fetches=12,
                  code_seconds=Decimal("13.5"))
    settlement = Settlement(upstream_model="gpt-4o-mini-2024", streamed=True, usage=usage, usage_estimated=True,
                            latency_ms=1400, ttft_ms=150, http_status=200, error_type="", ending="completed")
    expected = {
        "request_id": "req_columns", "tenant_id": tenant.pk, "api_key_id": None, "model": "demo/echo",
        "provider": "demo", "upstream_model": "gpt-4o-mini-2024", "capability": "chat", "streamed": True,
        "input_tokens": 1001, "output_tokens": 502, "reasoning_tokens": 3, "cached_tokens": 4,
        "cache_write_tokens": 5, "images": 6, "video_seconds": Decimal("7.5"), "characters": 8,
        "audio_seconds": Decimal("9.25"), "media_detail": "1024x1024/hd", "web_searches": 10, "web_fetches": 12,
        "search_units": 11, "code_seconds": Decimal("13.5"), "byok": False, "usage_estimated": True,
        "cost": reservation.cost_of(usage, None), "reserved": AMOUNT, "latency_ms": 1400, "ttft_ms": 150,
        "outcome": "ok", "http_status": 200, "error_type": "", "ending": "completed", "end_user": "user-7",
        "tags": {"team": "search"},
    }

    [returned] = async_to_sync(settle_in_one_batch)([(reservation, settlement)])

    stored = UsageRecord.objects.get(request_id="req_columns")
    for record in (returned, stored):
        assert {name: getattr(record, name) for name in expected} == expected


def test_a_records_init_receivers_still_see_the_records_a_batch_returns(tenant):
    """A written record's model instance skips Model.__init__ (usage/batches.py, record_builder),
    but not while UsageRecord has init-signal receivers: they see each record, as Django sends it."""
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(receiver, sender=UsageRecord)
    try:
        [returned] = async_to_sync(settle_in_one_batch)([(reservation_for(tenant, "req_signalled"), Settlement())])
    finally:
        post_init.disconnect(receiver, sender=UsageRecord)
    assert returned.request_id == "req_signalled" and any(instance is returned for instance in seen)
