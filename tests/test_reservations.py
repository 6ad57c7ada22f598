"""Reserved spend always comes back: on settlement, on release, or from the sweeper after a crash."""

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from providers.pricing import TokenPrices
from providers.types import Usage
from usage import recording, recovery
from usage.models import MonthlySpend, OpenReservation, UsageRecord
from usage.recording import Reservation, Settlement

PRICES = TokenPrices(Decimal("1"), Decimal("2"), Decimal("0.5"))


def reservation_for(tenant, request_id: str, amount: Decimal) -> Reservation:
    with transaction.atomic():
        month = recording.reserve(request_id, tenant.pk, amount, Decimal("10"))
    return Reservation(request_id=request_id, tenant_id=tenant.pk, api_key_id=None, model="demo/echo",
                       provider="demo", capability="chat", prices=PRICES, amount=amount, month=month)


def test_reservation_of_a_crashed_request_is_released_by_the_sweeper_once(tenant, other_tenant, settings):
    crashed = reservation_for(tenant, "req_crashed", Decimal("0.5"))
    alive = reservation_for(tenant, "req_alive", Decimal("0.25"))
    OpenReservation.objects.filter(request_id="req_crashed").update(
        created_at=timezone.now() - timedelta(seconds=settings.RESERVATION_TTL_SECONDS + 1))
    assert MonthlySpend.objects.get(tenant=tenant).reserved == Decimal("0.75")

    assert recovery.sweep_stale_reservations() == 1
    assert MonthlySpend.objects.get(tenant=tenant).reserved == Decimal("0.25")

    # If the "crashed" request settles after all, it pays its cost and gives nothing back twice.
    recording.settle(crashed, Settlement(usage=Usage(input_tokens=1000, output_tokens=1000)))
    recording.settle(alive, Settlement(usage=Usage(input_tokens=1000)))
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.reserved == 0
    assert ledger.settled == Decimal("0.004")  # 2000 + 1000 + 1000 tokens at $1/$2 per million
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2
    assert not MonthlySpend.objects.filter(tenant=other_tenant).exists()


def test_settling_twice_records_and_charges_once(tenant):
    reservation = reservation_for(tenant, "req_twice", Decimal("0.5"))
    usage = Settlement(usage=Usage(input_tokens=1000))
    assert recording.settle(reservation, usage) is not None
    assert recording.settle(reservation, usage) is None
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled) == (0, Decimal("0.001"))
    assert UsageRecord.objects.filter(request_id="req_twice").count() == 1


def test_a_request_whose_process_died_is_recorded_once_at_its_last_checkpoint(tenant, settings):
    with transaction.atomic():
        month = recording.reserve("req_died", tenant.pk, Decimal("0.5"), Decimal("10"),
                                  (None, "demo/echo", "demo", "chat"))
        recording.reserve("req_alive", tenant.pk, Decimal("0.25"), Decimal("10"), (None, "demo/echo", "demo", "chat"))
    recovery.checkpoint([recovery.Checkpoint("req_died", 120, 800, Decimal("0.0017"))])
    recovery.checkpoint([recovery.Checkpoint("req_alive", 10, 10, Decimal("0.00003"))])
    OpenReservation.objects.filter(request_id="req_died").update(
        checkpoint_at=timezone.now() - timedelta(seconds=settings.RESERVATION_TTL_SECONDS + 1))

    assert recovery.sweep_stale_reservations() == 1
    record = UsageRecord.objects.get(request_id="req_died")
    assert (record.ending, record.usage_estimated, record.input_tokens, record.output_tokens, record.cost) == (
        "interrupted", True, 120, 800, Decimal("0.0017"))
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled) == (Decimal("0.25"), Decimal("0.0017"))
    assert OpenReservation.objects.filter(request_id="req_alive").exists()  # checkpointed: alive

    late = Reservation(request_id="req_died", tenant_id=tenant.pk, api_key_id=None, model="demo/echo",
                       provider="demo", capability="chat", prices=PRICES, amount=Decimal("0.5"), month=month)
    assert recording.settle(late, Settlement(usage=Usage(input_tokens=1000))) is None  # recorded once
    assert UsageRecord.objects.filter(request_id="req_died").count() == 1
    assert MonthlySpend.objects.get(tenant=tenant).reserved == Decimal("0.25")
