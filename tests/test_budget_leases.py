"""Spend reservations come from a budget lease each process holds: a slice of the tenant's monthly
budget far from the cap, exactly one request's reservation near it, given back when the last
request settles, and taken back by the sweeper when its process died."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import openai
from asgiref.sync import async_to_sync
from django.utils import timezone

from billing.models import Plan
from gateway import api_keys
from providers.pricing import TokenPrices
from providers.types import Usage
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from usage import budget, recovery
from usage.leases import book
from usage.models import BudgetLease, MonthlySpend, OpenReservation, UsageRecord
from usage.recording import Reservation, Settlement
from usage.writer import writer

PRICES = TokenPrices(Decimal("1"), Decimal("2"), Decimal("0.5"))


def ask(client, **extra):
    return client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=1000, **extra)


def held_requests(client, fake_openai, count: int) -> tuple[ThreadPoolExecutor, list]:
    """``count`` requests sent at once, each held at the upstream until fake_openai.release()."""
    fake_openai.enqueue(*[Reply(hold=True) for _ in range(count)])
    pool = ThreadPoolExecutor(max_workers=count)

    def attempt(_):
        try:
            return ask(client).usage.completion_tokens and "ok"
        except openai.RateLimitError as exc:
            return exc.body["code"]

    return pool, [pool.submit(attempt, n) for n in range(count)]


def test_far_from_the_cap_one_slice_covers_many_requests(client, tenant, other_tenant, fake_openai, settings):
    settings.BUDGET_LEASE_SLICE = Decimal("0.50")
    pool, answers = held_requests(client, fake_openai, 8)
    wait_for(lambda: len(fake_openai.requests) == 8, what="every request at the upstream")
    lease = BudgetLease.objects.get(tenant=tenant)
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert lease.amount == ledger.reserved == Decimal("0.50")  # one slice: the Pro cap is far away
    wait_for(lambda: OpenReservation.objects.filter(tenant=tenant, lease_token=lease.token).count() == 8,
             what="the open rows of the requests held against it")
    fake_openai.release()
    assert [answer.result() for answer in answers] == ["ok"] * 8
    pool.shutdown()
    ledger.refresh_from_db()
    assert ledger.reserved == 0 and not BudgetLease.objects.exists()  # the last to settle gave it back
    assert ledger.settled == sum(record.cost for record in UsageRecord.objects.filter(tenant=tenant))
    assert not MonthlySpend.objects.filter(tenant=other_tenant).exists()


def test_near_the_cap_a_lease_holds_exactly_the_requests_reservations(client, tenant, fake_openai):
    # gpt-4o at 1000 output tokens: just over $0.01 a request; the cap fits three.
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("0.035"), requests_per_minute=1000)
    pool, answers = held_requests(client, fake_openai, 5)
    wait_for(lambda: sum(answer.done() for answer in answers) == 2, what="two refusals")
    wait_for(lambda: len(fake_openai.requests) == 3, what="three requests at the upstream")
    wait_for(lambda: OpenReservation.objects.filter(tenant=tenant).count() == 3, what="their open rows")
    held = sum(row.amount for row in OpenReservation.objects.filter(tenant=tenant))
    assert sum(lease.amount for lease in BudgetLease.objects.filter(tenant=tenant)) == held
    assert MonthlySpend.objects.get(tenant=tenant).reserved == held
    fake_openai.release()
    assert sorted(answer.result() for answer in answers) == ["insufficient_quota"] * 2 + ["ok"] * 3
    pool.shutdown()
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.reserved == 0 and not BudgetLease.objects.exists()
    assert ledger.settled == sum(record.cost for record in UsageRecord.objects.filter(tenant=tenant)) <= Decimal(
        "0.035")


def test_with_idle_leases_on_only_a_lease_far_from_the_cap_is_kept(client, tenant, other_tenant, fake_openai,
                                                                    settings):
    """BUDGET_LEASE_IDLE_SECONDS (5 by default) keeps a full slice for the next request; near the
    cap the lease held a request's worth another process may need, and goes back with its last
    settlement all the same."""
    settings.BUDGET_LEASE_IDLE_SECONDS = 60
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("0.035"), requests_per_minute=1000)
    assert ask(client).usage.completion_tokens
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.reserved == 0 and not BudgetLease.objects.exists()  # near the cap: given back

    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("100"))
    api_keys.forget_keys()  # the new cap is read at once, not after KEY_CACHE_SECONDS
    assert ask(client).usage.completion_tokens
    lease = BudgetLease.objects.get(tenant=tenant)  # far from it: kept for the next request
    ledger.refresh_from_db()
    assert lease.amount == ledger.reserved > 0
    assert ledger.settled == sum(record.cost for record in UsageRecord.objects.filter(tenant=tenant))


def reservation(tenant, request_id: str, amount: str = "0.01") -> Reservation:
    return Reservation(request_id=request_id, tenant_id=tenant.pk, api_key_id=None, model="demo/echo",
                       provider="demo", capability="chat", prices=PRICES, amount=Decimal(amount), month=None)


def reserve(held: Reservation, cap: str | None = "10") -> bool:
    return async_to_sync(budget.reserve)(held, None if cap is None else Decimal(cap))


def settle(held: Reservation, usage: Usage):
    return async_to_sync(writer.settle)(held, Settlement(usage=usage))


def age(model, seconds: float, **fields) -> None:
    past = timezone.now() - timedelta(seconds=seconds + 1)
    model.objects.update(**dict.fromkeys(fields, past))


def test_a_dead_processs_lease_is_given_back_after_its_ttl_and_its_requests_recorded(tenant, settings):
    first, second = reservation(tenant, "req_first"), reservation(tenant, "req_second")
    assert reserve(first) and reserve(second)
    wait_for(lambda: OpenReservation.objects.count() == 2, what="the open rows")
    recovery.checkpoint([recovery.Checkpoint("req_first", 100, 200, Decimal("0.0005"))])
    book.forget()  # the process dies: what it held in memory is gone
    age(OpenReservation, settings.RESERVATION_TTL_SECONDS, created_at=True, checkpoint_at=True)
    assert recovery.sweep_stale_reservations() == 0  # its lease is still renewed: not dead yet

    age(BudgetLease, settings.BUDGET_LEASE_TTL_SECONDS, renewed_at=True)
    assert recovery.sweep_stale_reservations() == 2
    records = UsageRecord.objects.filter(tenant=tenant)
    assert {record.ending for record in records} == {"interrupted"}
    assert sorted(record.cost for record in records) == [0, Decimal("0.0005")]
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled) == (0, Decimal("0.0005"))
    assert not BudgetLease.objects.exists() and not OpenReservation.objects.exists()


def test_a_lease_the_sweeper_took_from_a_live_process_is_never_counted_twice(tenant, settings):
    first = reservation(tenant, "req_first")
    assert reserve(first)
    wait_for(lambda: OpenReservation.objects.exists(), what="the open row")
    age(BudgetLease, settings.BUDGET_LEASE_TTL_SECONDS, renewed_at=True)  # renewals were late (a stalled host)
    assert recovery.sweep_stale_reservations() == 0  # the request itself is alive
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0  # the lease was given back

    assert settle(first, Usage(input_tokens=1000)) is not None
    second = reservation(tenant, "req_second")
    assert reserve(second)  # on a new lease
    assert second.lease is not first.lease
    assert settle(second, Usage(input_tokens=2000)) is not None
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled) == (0, Decimal("0.003"))
    assert not BudgetLease.objects.exists() and not OpenReservation.objects.exists()


def test_a_lower_cap_applies_to_the_next_request_despite_the_lease(tenant):
    first = reservation(tenant, "req_first")
    assert reserve(first, cap=None)  # no cap: a full slice
    assert BudgetLease.objects.get().amount == Decimal("1.00")
    assert not reserve(reservation(tenant, "req_second"), cap="0.015")  # the lease has room, the cap not
    assert settle(first, Usage(input_tokens=1000)) is not None
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled) == (0, Decimal("0.001"))
    assert not BudgetLease.objects.exists()


def test_a_released_hold_gives_its_lease_back(tenant, other_tenant):
    held = reservation(tenant, "req_left")
    assert reserve(held)
    budget.release(held)
    wait_for(lambda: not BudgetLease.objects.exists(), what="the lease to be given back")
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0
    assert not OpenReservation.objects.exists() and not UsageRecord.objects.exists()
    assert not MonthlySpend.objects.filter(tenant=other_tenant).exists()


def test_an_idle_lease_is_given_back_before_a_changed_cap_takes_a_new_one(tenant, settings):
    """Kept idle (BUDGET_LEASE_IDLE_SECONDS), a lease still holds its slice in the ledger; when the
    tenant's cap changes (a downgrade, say) the next request retires it, and it is given back
    before the new cap's lease is granted, so its slice does not count against the new cap."""
    settings.BUDGET_LEASE_IDLE_SECONDS = 60
    first = reservation(tenant, "req_first")
    assert reserve(first, cap=None) and settle(first, Usage(input_tokens=1000)) is not None
    assert MonthlySpend.objects.get(tenant=tenant).reserved == Decimal("0.999")  # kept for the next request

    second = reservation(tenant, "req_second")
    assert reserve(second, cap="0.5")  # the old slice alone is more than the new cap
    assert second.lease is not first.lease
    assert second.lease.last_slice <= Decimal("0.05")  # a tenth of what the new cap leaves
    assert settle(second, Usage(input_tokens=1000)) is not None
    # Near the new cap, the second lease does not idle: it went back with its settlement.
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0 and not BudgetLease.objects.exists()


def test_a_request_that_exactly_reaches_the_cap_is_reserved(tenant, other_tenant):
    for request_id in ("req_first", "req_second"):
        held = reservation(tenant, request_id, "0.10")
        assert reserve(held, cap="0.30")
        assert settle(held, Usage(input_tokens=100_000)) is not None  # $0.10
    assert MonthlySpend.objects.get(tenant=tenant).settled == Decimal("0.20")
    third = reservation(tenant, "req_third", "0.10")
    assert reserve(third, cap="0.30")  # $0.20 + $0.10 is $0.30 exactly (not in floats)
    assert settle(third, Usage(input_tokens=100_000)) is not None
    assert not reserve(reservation(tenant, "req_fourth", "0.0000000001"), cap="0.30")
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.settled, ledger.reserved) == (Decimal("0.30"), 0)
    assert not MonthlySpend.objects.filter(tenant=other_tenant).exists()
