"""Reserved spend always comes back: on settlement, on release, or from the sweeper after a crash."""

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from providers.pricing import TokenPrices
from providers.types import Usage
from usage import recording
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

    assert recording.sweep_stale_reservations() == 1
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
