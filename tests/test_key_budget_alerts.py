"""Spend alerts cover the budgets of keys and end users as they cover the monthly cap: a key's
budget past 50 % of its day mails the owners once that day, and again the next day; an end
user's budget likewise, in its own period."""

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail

from billing import alerts
from billing.alert_delivery import send_alerts
from billing.alert_models import BudgetAlert
from billing.budget_models import BudgetSpend
from billing.spend_budgets import add_end_user_budget, set_key_budget
from gateway.models import ApiKey

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def forget_seen_alerts():
    alerts.seen.clear()


def settle(budget, spent: str, *, day: datetime = NOW) -> None:
    """The budget's day ledger as settlement leaves it."""
    start = day.replace(hour=0, minute=0)
    BudgetSpend.objects.update_or_create(budget=budget, period_start=start, defaults={"settled": Decimal(spent)})


def run_job(now: datetime = NOW) -> None:
    asyncio.run(send_alerts(now=now))


def test_a_keys_and_an_end_users_budgets_alert_once_per_period(tenant, other_tenant, api_key):
    key_budget = set_key_budget(ApiKey.objects.get(tenant=tenant), amount="10", period="day")
    user_budget = add_end_user_budget(tenant, end_user="user-4711", amount="4", period="day")
    settle(key_budget, "4")  # 40 %: nothing
    settle(user_budget, "2")  # 50 %
    run_job()
    assert [m.subject for m in mail.outbox] == ["alice-co: 50% of the budget of end user 'user-4711' reached"]

    settle(key_budget, "5.5")
    run_job(NOW + timedelta(minutes=1))
    run_job(NOW + timedelta(minutes=2))
    assert [m.subject for m in mail.outbox][1:] == ["alice-co: 50% of the budget of API key 'alice laptop' reached"]
    assert "$5.50 of the budget of API key 'alice laptop', $10.00 per day" in mail.outbox[-1].body

    tomorrow = NOW + timedelta(days=1)
    run_job(tomorrow)  # yesterday's spend is not today's
    settle(key_budget, "6", day=tomorrow)
    run_job(tomorrow)
    assert len(mail.outbox) == 3
    assert set(BudgetAlert.objects.values_list("scope", "subject", "threshold")) == {
        ("end_user", "user-4711", 50), ("key", str(key_budget.api_key_id), 50)}
    assert not BudgetAlert.objects.filter(tenant=other_tenant).exists()


def test_a_threshold_crossed_just_before_midnight_still_alerts_after_it(tenant, api_key):
    budget = set_key_budget(ApiKey.objects.get(tenant=tenant), amount="10", period="day")
    last_check = NOW.replace(hour=23, minute=59, second=40)
    run_job(last_check)
    settle(budget, "8")  # 80 %, at 23:59:50 (or by a request admitted then, settled after midnight)
    run_job(last_check + timedelta(seconds=30))  # the next check is already in the new day
    assert [m.subject for m in mail.outbox] == ["alice-co: 80% of the budget of API key 'alice laptop' reached"]
    assert {alert.period_start for alert in BudgetAlert.objects.all()} == {NOW.replace(hour=0, minute=0)}
    run_job(last_check + timedelta(hours=2))
    assert len(mail.outbox) == 1  # once


def test_end_users_with_ids_longer_than_an_alerts_subject_alert_apart_and_others_still_alert(tenant, other_tenant):
    # End user ids may be 256 characters; an alert's subject holds 200 (PostgreSQL refuses more).
    shared = "u" * 229
    first = add_end_user_budget(tenant, end_user=f"{shared}-first-{'1' * 20}", amount="4", period="day")
    second = add_end_user_budget(tenant, end_user=f"{shared}-second-{'2' * 19}", amount="4", period="day")
    charlies = add_end_user_budget(other_tenant, end_user="user-9", amount="4", period="day")
    assert len(first.subject) == len(second.subject) == 256
    for budget in (first, second, charlies):
        settle(budget, "2")  # 50 %
    run_job()
    subjects = list(BudgetAlert.objects.filter(tenant=tenant).values_list("subject", flat=True))
    assert len(subjects) == len(set(subjects)) == 2 and all(len(subject) <= 200 for subject in subjects)
    assert all(subject.startswith("u" * 150) for subject in subjects)
    assert len(mail.outbox) == 3  # Alice's two end users and Charlie's, each once
    assert sum(first.subject in m.body or second.subject in m.body for m in mail.outbox) == 2
    assert BudgetAlert.objects.filter(tenant=other_tenant).count() == 1

    alerts.seen.clear()  # a fresh process finds them recorded
    run_job(NOW + timedelta(minutes=1))
    assert len(mail.outbox) == 3 and BudgetAlert.objects.count() == 3
