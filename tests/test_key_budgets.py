"""A tenant admin gives an API key a budget, an amount per day, week or month (UTC), with
``PATCH /api/tenants/<slug>/keys/<id>/``; the key's JSON shows it with what its period has spent.
Past it the key's requests get 429 insufficient_quota naming the budget and when it resets, and
they go on once the next period starts (the budgets' clock is injected). Other keys, and other
tenants, are untouched; members and outsiders cannot set it."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
import pytest
from django.db import connection, transaction
from django.utils import timezone

from billing import spend_budgets, spend_holds, spend_limits
from billing.budget_models import BudgetSpend, SpendBudget, SpendHold
from billing.spend_holds import HoldRequest
from gateway.api_keys import issue_api_key
from gateway.models import ApiKey, Role
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from tests.test_management_api_keys import add_member, management_key, signed_in, with_key
from usage.models import UsageRecord

NOW = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)
# gpt-4o: "hi" bounds the prompt at 10 tokens and max_tokens=1000 the output: $0.010025 reserved,
# and the fake upstream reports exactly that much used.
COST = Decimal("0.010025")
FULL = {"prompt_tokens": 10, "completion_tokens": 1000, "total_tokens": 1010}


@pytest.fixture
def clock(monkeypatch):
    """The time budgets' periods are read at; move it with ``clock[0] = ...``."""
    now = [NOW]
    monkeypatch.setattr(spend_limits, "clock", lambda: now[0])
    return now


def ask(sdk, **extra):
    return sdk.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=1000, **extra)


def spend(sdk, fake_openai, count: int, **extra) -> None:
    """``count`` requests that each cost COST, all answered."""
    fake_openai.enqueue(*[Reply(usage=FULL) for _ in range(count)])
    for _ in range(count):
        ask(sdk, **extra)


def refusal(sdk, **extra) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as refused:
        ask(sdk, **extra)
    assert refused.value.body["code"] == "insufficient_quota"
    assert refused.value.response.headers["x-should-retry"] == "false"
    return refused.value


def key_path(key: ApiKey) -> str:
    return f"/api/tenants/{key.tenant.slug}/keys/{key.pk}/"


def settle_request(tenant, amount: str, *, request_id: str, key_id: int | None = None,
                   prepaid: bool = False) -> None:
    """A request that cost ``amount`` held and settled, as admission and settlement do it."""
    with transaction.atomic():
        assert spend_holds.hold(HoldRequest(request_id, tenant.pk, key_id, "", Decimal(amount), prepaid,
                                            timezone.now())) is None
    with transaction.atomic(), connection.cursor() as cursor:
        spend_holds.settle_holds(cursor, [(request_id, Decimal(amount))])


def settled_once(tenant) -> None:
    wait_for(lambda: not SpendHold.objects.filter(tenant=tenant).exists(), what="every hold settled")


def test_a_key_stops_at_its_daily_budget_and_goes_on_the_next_day(client, sdk_for, tenant, other_tenant,
                                                                   other_client, fake_openai, clock):
    laptop = ApiKey.objects.get(tenant=tenant, name="alice laptop")
    ci = issue_api_key(tenant, name="ci").api_key
    alice = signed_in("alice@example.com")
    answer = alice.patch(key_path(laptop), {"budget": {"amount": "0.03", "period": "day"}},
                         content_type="application/json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["budget"] | {"period_start": None, "resets_at": None} == {
        "amount": "0.03", "period": "day", "spent": "0.0000000000", "held": "0.0000000000",
        "remaining": "0.0300000000", "period_start": None, "resets_at": None}

    spend(client, fake_openai, 2)  # $0.02005: a third request could pass $0.03
    refused = refusal(client)
    assert refused.body["message"] == (
        "You exceeded your current quota: API key 'alice laptop' has a budget of $0.03 per day, $0.020050 of "
        "it is spent or held by requests in flight, and this request could cost up to $0.010025. The budget resets "
        "at 2026-11-21 00:00 UTC. Lower max_tokens, wait for the reset, or ask a tenant admin to raise the key's "
        "budget.")
    assert refused.response.headers["retry-after"] == str(90 * 60)
    assert len(fake_openai.requests) == 2  # the refused request reached no provider
    assert ask(sdk_for(issue_api_key(tenant, name="other").raw)).choices  # the tenant's other keys go on
    assert ask(other_client).choices  # and Charlie's

    shown = alice.get(key_path(laptop)).json()["budget"]
    assert (shown["spent"], shown["held"], shown["resets_at"]) == ("0.0200500000", "0.0000000000",
                                                                   "2026-11-21T00:00:00Z")
    assert alice.get(key_path(ci)).json()["budget"] is None

    clock[0] = NOW + timedelta(hours=1, minutes=30)  # 2026-11-21 00:00: a new day
    spend(client, fake_openai, 2)
    refusal(client)
    settled_once(tenant)
    by_day = {row.period_start.day: row.settled for row in BudgetSpend.objects.filter(budget__api_key=laptop)}
    assert by_day == {20: 2 * COST, 21: 2 * COST}
    assert sum(r.cost for r in UsageRecord.objects.filter(api_key=laptop)) == 4 * COST


def test_a_weekly_budget_resets_on_monday_and_removing_it_lifts_the_stop(client, tenant, fake_openai, clock):
    laptop = ApiKey.objects.get(tenant=tenant, name="alice laptop")
    admin = with_key(management_key(tenant))
    assert admin.patch(key_path(laptop), {"budget": {"amount": "0.02", "period": "week"}},
                       content_type="application/json").status_code == 200
    spend(client, fake_openai, 1)
    assert "The budget resets at 2026-11-23 00:00 UTC" in refusal(client).body["message"]  # Friday -> Monday

    raised = admin.patch(key_path(laptop), {"budget": {"amount": "0.05", "period": "week"}},
                         content_type="application/json")
    assert raised.json()["budget"]["amount"] == "0.05"
    spend(client, fake_openai, 1)  # a higher amount applies to the next request

    removed = admin.patch(key_path(laptop), {"budget": None}, content_type="application/json")
    assert removed.status_code == 200 and removed.json()["budget"] is None
    assert not SpendBudget.objects.filter(tenant=tenant).exists()
    spend(client, fake_openai, 4)  # no budget: only the plan's cap


def test_only_owners_and_admins_set_a_keys_budget_and_outsiders_find_no_key(tenant, other_tenant, api_key):
    laptop = ApiKey.objects.get(tenant=tenant, name="alice laptop")
    add_member(tenant, "bob@example.com", Role.MEMBER)
    budget = {"budget": {"amount": "5.00", "period": "day"}}
    bob = signed_in("bob@example.com")
    refused = bob.patch(key_path(laptop), budget, content_type="application/json")
    assert refused.status_code == 403 and "owner or admin" in refused.json()["error"]["message"]
    assert bob.get(key_path(laptop)).json()["budget"] is None  # members read it

    for outsider in (signed_in("charlie@example.com"), with_key(management_key(other_tenant))):
        assert outsider.patch(key_path(laptop), budget, content_type="application/json").status_code == 404
    charlies = issue_api_key(other_tenant, name="charlie's")
    assert signed_in("alice@example.com").patch(f"/api/tenants/alice-co/keys/{charlies.api_key.pk}/", budget,
                                                content_type="application/json").status_code == 404
    assert not SpendBudget.objects.exists()


@pytest.mark.parametrize("budget, field", [
    ({"amount": "0", "period": "day"}, "amount"), ({"amount": "-1", "period": "day"}, "amount"),
    ({"amount": "1.001", "period": "day"}, "amount"), ({"amount": "NaN", "period": "day"}, "amount"),
    ({"amount": "5", "period": "year"}, "period"), ({"amount": "5"}, "period"),
])
def test_a_budget_the_api_refuses_says_which_field(tenant, api_key, budget, field):
    laptop = ApiKey.objects.get(tenant=tenant, name="alice laptop")
    answer = signed_in("alice@example.com").patch(key_path(laptop), {"budget": budget},
                                                  content_type="application/json")
    assert answer.status_code == 400
    assert field in str(answer.json()["error"]["fields"])
    assert not SpendBudget.objects.exists()


def test_a_request_that_exactly_uses_up_a_budget_is_held(tenant, other_tenant, api_key):
    laptop = ApiKey.objects.get(tenant=tenant, name="alice laptop")
    spend_budgets.set_key_budget(laptop, amount="0.30", period="day")
    for request_id in ("first", "second", "third"):  # $0.20 + $0.10 fits $0.30 (not in floats)
        settle_request(tenant, "0.10", request_id=request_id, key_id=laptop.pk)
    assert BudgetSpend.objects.get(budget__api_key=laptop).settled == Decimal("0.30")
    with transaction.atomic():
        refused = spend_holds.hold(HoldRequest("fourth", tenant.pk, laptop.pk, "", Decimal("0.0000000001"), False,
                                               timezone.now()))
    assert (refused.scope, refused.used) == ("key", Decimal("0.30"))
    assert not SpendHold.objects.exists() and not BudgetSpend.objects.filter(budget__tenant=other_tenant).exists()
