"""What a budget or the credits hold for a request always comes back: a request whose process died
is recorded by the reservation sweeper at its last checkpoint, and the holds sweep then settles its
budget and credit holds at that cost, once; a hold whose request left neither a record nor an open
reservation is given back after RESERVATION_TTL_SECONDS; a released request's holds go back at
once."""

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing import credits, spend_holds
from billing.budget_models import BudgetSpend, SpendHold
from billing.models import CreditAccount
from billing.spend_budgets import add_end_user_budget
from billing.spend_holds import HoldRequest
from usage import recording, recovery
from usage.models import OpenReservation, UsageRecord


def hold(tenant, request_id: str, amount: str) -> None:
    with transaction.atomic():
        assert spend_holds.hold(HoldRequest(request_id, tenant.pk, None, "user-1", Decimal(amount), True,
                                            timezone.now())) is None


def test_a_dead_requests_holds_are_settled_at_its_recorded_cost_once(tenant, other_tenant, settings):
    budget = add_end_user_budget(tenant, end_user="user-1", amount="5", period="day")
    credits.adjust_credits(tenant.pk, Decimal("5"), reason="test credits")
    hold(tenant, "req_died", "0.5")
    with transaction.atomic():  # its open row, as its (now dead) process wrote it
        recording.reserve("req_died", tenant.pk, Decimal("0.5"), None, (None, "demo/echo", "demo", "chat"))
    recovery.checkpoint([recovery.Checkpoint("req_died", 120, 800, Decimal("0.0017"))])
    assert spend_holds.sweep_holds() == (0, 0)  # alive as far as anyone knows: left alone
    OpenReservation.objects.filter(request_id="req_died").update(
        checkpoint_at=timezone.now() - timedelta(seconds=settings.RESERVATION_TTL_SECONDS + 1))

    assert recovery.sweep_stale_reservations() == 1
    assert UsageRecord.objects.get(request_id="req_died").cost == Decimal("0.0017")
    assert spend_holds.sweep_holds() == (1, 0)
    assert spend_holds.sweep_holds() == (0, 0)
    ledger = BudgetSpend.objects.get(budget=budget)
    assert (ledger.settled, ledger.reserved) == (Decimal("0.0017"), 0)
    account = CreditAccount.objects.get(tenant=tenant)
    assert (account.spent_undebited, account.reserved) == (Decimal("0.0017"), 0)
    assert not SpendHold.objects.exists() and not CreditAccount.objects.filter(tenant=other_tenant).exists()


def test_an_abandoned_hold_is_given_back_after_the_ttl_and_a_released_one_at_once(tenant, settings):
    budget = add_end_user_budget(tenant, end_user="user-1", amount="5", period="day")
    credits.adjust_credits(tenant.pk, Decimal("5"), reason="test credits")
    hold(tenant, "req_lost", "1")  # its process died before it wrote its open row
    hold(tenant, "req_released", "2")
    spend_holds.release(["req_released"])  # the client left before the request ran
    assert BudgetSpend.objects.get(budget=budget).reserved == 1

    assert spend_holds.sweep_holds() == (0, 0)  # not yet: its request may still be on its way
    later = timezone.now() + timedelta(seconds=settings.RESERVATION_TTL_SECONDS + 1)
    assert spend_holds.sweep_holds(now=later) == (0, 1)
    ledger = BudgetSpend.objects.get(budget=budget)
    assert (ledger.settled, ledger.reserved) == (0, 0)
    account = CreditAccount.objects.get(tenant=tenant)
    assert (account.spent_undebited, account.reserved) == (0, 0)
    assert not SpendHold.objects.exists()
