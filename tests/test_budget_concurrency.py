"""Budgets and credits are hard under concurrency: requests that arrive at once never spend past
a key's or an end user's budget or a prepaid tenant's credits, whether they share one gateway
(through its ledger writer) or hold from many nodes at once (each its own database connection and
transaction, as the writers of separate processes do). Run on SQLite and on PostgreSQL
(tests/with_postgres.sh)."""

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from billing import credits, spend_holds
from billing.budget_models import BudgetSpend, SpendHold
from billing.models import CreditAccount, Plan, Subscription
from billing.spend_budgets import add_end_user_budget, set_key_budget
from billing.spend_holds import HoldRequest
from gateway.models import ApiKey
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from tests.test_key_budgets import COST, FULL, ask
from usage.models import UsageRecord

AT_ONCE = 8


def held_requests(client, fake_openai, count: int, **extra) -> tuple[ThreadPoolExecutor, list]:
    """``count`` requests sent at once, each held at the upstream until fake_openai.release()."""
    fake_openai.enqueue(*[Reply(hold=True, usage=FULL) for _ in range(count)])
    pool = ThreadPoolExecutor(max_workers=count)

    def attempt(_):
        try:
            return ask(client, **extra).usage.completion_tokens and "ok"
        except openai.RateLimitError as exc:
            return exc.body["code"]

    return pool, [pool.submit(attempt, n) for n in range(count)]


def run_at_once(client, fake_openai, admitted: int, **extra) -> list[str]:
    pool, answers = held_requests(client, fake_openai, AT_ONCE, **extra)
    wait_for(lambda: sum(answer.done() for answer in answers) == AT_ONCE - admitted, what="the refusals")
    wait_for(lambda: len(fake_openai.requests) == admitted, what="the admitted requests at the upstream")
    fake_openai.release()
    results = sorted(answer.result() for answer in answers)
    pool.shutdown()
    return results


@pytest.mark.parametrize("whose", ["key", "end_user"])
def test_requests_at_once_never_pass_a_budget(client, tenant, other_tenant, fake_openai, whose):
    # Three requests' reservations fit $0.04 ($0.030075), a fourth would not ($0.0401).
    if whose == "key":
        budget = set_key_budget(ApiKey.objects.get(tenant=tenant), amount="0.04", period="day")
        extra = {}
    else:
        budget = add_end_user_budget(tenant, end_user="user-1", amount="0.04", period="day")
        extra = {"user": "user-1"}
    assert run_at_once(client, fake_openai, 3, **extra) == ["insufficient_quota"] * 5 + ["ok"] * 3
    wait_for(lambda: not SpendHold.objects.exists(), what="every hold settled")
    [ledger] = BudgetSpend.objects.filter(budget=budget)
    assert ledger.reserved == 0
    assert ledger.settled == sum(record.cost for record in UsageRecord.objects.filter(tenant=tenant)) == 3 * COST
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_prepaid_requests_at_once_never_spend_more_than_the_credits(client, tenant, fake_openai):
    Subscription.objects.filter(tenant=tenant).update(plan=Plan.objects.get(slug="payg"))
    credits.adjust_credits(tenant.pk, Decimal("0.035"), reason="test credits")
    assert run_at_once(client, fake_openai, 3) == ["insufficient_quota"] * 5 + ["ok"] * 3
    wait_for(lambda: not SpendHold.objects.exists(), what="every hold settled")
    account = CreditAccount.objects.get(tenant=tenant)
    assert (account.balance, account.reserved, account.spent_undebited) == (Decimal("0.035"), 0, 3 * COST)


def test_requests_spread_over_two_nodes_never_pass_a_keys_budget(processes, api_key, tenant, fake_openai):
    set_key_budget(ApiKey.objects.get(tenant=tenant), amount="0.04", period="day")
    nodes = processes.nodes(2)
    fake_openai.enqueue(*[Reply(hold=True, usage=FULL) for _ in range(AT_ONCE)])
    body = {"model": "openai/gpt-4o", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}

    def call(url: str) -> int:
        return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {api_key}"},
                          timeout=30).status_code

    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        answers = [pool.submit(call, url) for url in itertools.islice(itertools.cycle(nodes), AT_ONCE)]
        wait_for(lambda: sum(answer.done() for answer in answers) == AT_ONCE - 3, timeout=30, what="the refusals")
        wait_for(lambda: len(fake_openai.requests) == 3, what="the admitted requests at the upstream")
        fake_openai.release()
        assert sorted(answer.result() for answer in answers) == [200] * 3 + [429] * 5
    wait_for(lambda: not SpendHold.objects.exists(), timeout=30, what="every hold settled")
    [ledger] = BudgetSpend.objects.all()
    assert ledger.reserved == 0 and ledger.settled == 3 * COST


def hold_on_own_connection(request: HoldRequest, start: threading.Barrier, outcomes: list) -> None:
    """One node's writer: its own connection and transaction, holding as the gateway does."""
    try:
        start.wait()
        with transaction.atomic():
            outcomes.append((request.request_id, spend_holds.hold(request)))
    except Exception as exc:  # reported by the test: a thread's exception would be lost
        outcomes.append((request.request_id, exc))
    finally:
        connections.close_all()


def test_nodes_holding_at_once_never_pass_a_budget_or_the_credits(tenant, other_tenant):
    """Eight holds from eight connections at once, each $1, against a $3 key budget, a $4 end-user
    budget and $5 of credits: exactly three succeed, and settling them moves exactly their costs.
    (Eight: with the test's own, the writer's and the test server's, well within PostgreSQL's
    connection pool.)"""
    Subscription.objects.filter(tenant=tenant).update(plan=Plan.objects.get(slug="payg"))
    credits.adjust_credits(tenant.pk, Decimal("5"), reason="test credits")
    key = ApiKey.objects.create(tenant=tenant, name="node key", prefix="nodekey", hashed="x")
    key_budget = set_key_budget(key, amount="3", period="day")
    user_budget = add_end_user_budget(tenant, end_user="user-1", amount="4", period="day")
    requests = [HoldRequest(f"req-{n}", tenant.pk, key.pk, "user-1", Decimal("1"), True, timezone.now())
                for n in range(8)]
    start, outcomes = threading.Barrier(len(requests)), []
    threads = [threading.Thread(target=hold_on_own_connection, args=(request, start, outcomes))
               for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 8 and not [outcome for _, outcome in outcomes if isinstance(outcome, Exception)]
    admitted = sorted(request_id for request_id, refused in outcomes if refused is None)
    assert len(admitted) == 3
    assert {refused.scope for _, refused in outcomes if refused is not None} == {"key"}
    ledgers = {row.budget_id: row for row in BudgetSpend.objects.all()}
    assert ledgers[key_budget.pk].reserved == ledgers[user_budget.pk].reserved == 3
    assert CreditAccount.objects.get(tenant=tenant).reserved == 3

    with transaction.atomic(), connection.cursor() as cursor:  # a settlement: $0.25 each
        spend_holds.settle_holds(cursor, [(request_id, Decimal("0.25")) for request_id in admitted])
    for row in BudgetSpend.objects.all():
        assert (row.settled, row.reserved) == (Decimal("0.75"), 0)
    account = CreditAccount.objects.get(tenant=tenant)
    assert (account.reserved, account.spent_undebited) == (0, Decimal("0.75"))
    assert not SpendHold.objects.exists() and not CreditAccount.objects.filter(tenant=other_tenant).exists()
