"""Spend alerts by mail: when a tenant's month-to-date spend reaches a threshold of its cap (50,
80 and 100 % unless it chose others), its owners and billing members get one mail, never two in
the month, and one again the next month, however many background processes look at once. The
clock is injected; the spend is the usage ledger's (MonthlySpend), as settlement leaves it."""

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connections

from billing import alerts
from billing.alert_delivery import deliver_due, send_alerts
from billing.alert_models import AlertDelivery, BudgetAlert, BudgetPeriod, BudgetScope
from billing.budgets import Budget, BudgetUse, period_bounds
from billing.models import Plan
from gateway.models import Role
from tests.conftest import add_member, signed_in
from usage.models import MonthlySpend

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)  # Alice's Pro plan caps November at $250


@pytest.fixture(autouse=True)
def forget_seen_alerts():
    alerts.seen.clear()  # this process's memo of recorded alerts, as a fresh process starts


@pytest.fixture
def team(tenant):
    """Alice's tenant with a member of each role besides its owner, Alice."""
    for email, role in [("bob@example.com", Role.MEMBER), ("ada@example.com", Role.ADMIN),
                        ("pay@example.com", Role.BILLING)]:
        add_member(tenant, email, role)
    return tenant


def spend(tenant, amount: str, *, now: datetime = NOW) -> None:
    """The month's settled spend in the ledger, as settlement leaves it."""
    month = now.date().replace(day=1)
    MonthlySpend.objects.update_or_create(tenant=tenant, month=month, defaults={"settled": Decimal(amount)})


def run_job(now: datetime = NOW) -> str:
    return asyncio.run(send_alerts(now=now))


def mails_to(email: str) -> list:
    return [message for message in mail.outbox if email in message.to]


def test_each_threshold_mails_the_owners_and_billing_members_once(team, other_tenant):
    spend(team, "100")  # 40 %: nothing yet
    spend(other_tenant, "10")
    run_job()
    assert mail.outbox == []

    spend(team, "130")  # 52 %
    run_job()
    [first] = mail.outbox
    assert sorted(first.to) == ["alice@example.com", "pay@example.com"]  # not the member, not the admin
    assert first.subject == "alice-co: 50% of the monthly spend cap reached"
    assert "$130.00 of the monthly spend cap, $250.00 per month" in first.body
    assert "/t/alice-co/billing/alerts/" in first.body

    run_job(NOW + timedelta(minutes=1))  # the same month: no second mail
    spend(team, "140")
    run_job(NOW + timedelta(minutes=2))
    assert len(mail.outbox) == 1

    spend(team, "205")  # 82 %
    run_job(NOW + timedelta(minutes=3))
    spend(team, "250")  # the cap
    run_job(NOW + timedelta(minutes=4))
    subjects = [message.subject for message in mail.outbox]
    assert subjects == ["alice-co: 50% of the monthly spend cap reached", "alice-co: 80% of the monthly spend cap reached",
                        "alice-co: 100% of the monthly spend cap reached"]
    assert "refused (429 insufficient_quota) until 2026-12-01 00:00 UTC" in mail.outbox[-1].body
    assert mails_to("bob@example.com") == mails_to("ada@example.com") == mails_to("charlie@example.com") == []
    assert not BudgetAlert.objects.filter(tenant=other_tenant).exists()  # Charlie spent 4 %


def test_the_next_month_alerts_again(tenant):
    spend(tenant, "200")
    run_job()
    assert [m.subject for m in mail.outbox] == ["alice-co: 80% of the monthly spend cap reached"]
    december = datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC)
    run_job(december)  # November's ledger is not December's spend
    assert len(mail.outbox) == 1
    spend(tenant, "130", now=december)
    run_job(december)
    assert [m.subject for m in mail.outbox][-1] == "alice-co: 50% of the monthly spend cap reached"
    starts = sorted(BudgetAlert.objects.filter(tenant=tenant).values_list("period_start", flat=True))
    assert starts[0] == datetime(2026, 11, 1, tzinfo=UTC) and starts[-1] == datetime(2026, 12, 1, tzinfo=UTC)


def test_passing_several_thresholds_at_once_sends_one_alert_for_the_highest(tenant):
    spend(tenant, "250")
    run_job()
    [message] = mail.outbox
    assert message.subject == "alice-co: 100% of the monthly spend cap reached"
    assert "passing 50%, 80% on the way" in message.body
    recorded = BudgetAlert.objects.filter(tenant=tenant).order_by("threshold")
    assert [(a.threshold, a.notified) for a in recorded] == [(50, False), (80, False), (100, True)]
    run_job(NOW + timedelta(hours=1))
    assert len(mail.outbox) == 1


def test_a_tenant_chooses_its_thresholds(tenant, other_tenant):
    browser = signed_in("alice@example.com")
    page = browser.post("/t/alice-co/billing/alerts/", {"thresholds": "25%, 90", "webhook_url": ""}, follow=True)
    assert page.status_code == 200 and "Alert settings saved." in page.content.decode()
    spend(tenant, "70")  # 28 %
    spend(other_tenant, "70")  # Charlie keeps the defaults: 28 % is below them
    run_job()
    assert [m.subject for m in mail.outbox] == ["alice-co: 25% of the monthly spend cap reached"]

    refused = browser.post("/t/alice-co/billing/alerts/", {"thresholds": "50, 150", "webhook_url": ""})
    assert refused.status_code == 400 and "from 1 to 100" in refused.content.decode()
    browser.post("/t/alice-co/billing/alerts/", {"thresholds": "", "webhook_url": ""})  # off
    spend(tenant, "240")
    run_job(NOW + timedelta(minutes=1))
    assert len(mail.outbox) == 1


def test_a_raised_cap_is_a_new_budget(tenant):
    spend(tenant, "25")
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("25"))
    run_job()
    assert [m.subject for m in mail.outbox] == ["alice-co: 100% of the monthly spend cap reached"]
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("40"))
    run_job(NOW + timedelta(minutes=1))  # $25 of $40: 62 %, of a budget not alerted on yet
    assert [m.subject for m in mail.outbox][-1] == "alice-co: 50% of the monthly spend cap reached"


def test_the_settlement_hook_records_a_budget_once_and_cheaply(tenant, django_assert_num_queries):
    """What a per-key budget's settlement would call: the cap is one budget, a key's is another."""
    start, end = period_bounds(BudgetPeriod.DAY, NOW)
    use = BudgetUse(Budget(BudgetScope.KEY, "17", Decimal("5"), BudgetPeriod.DAY), Decimal("4.10"), start, end,
                    label="key 'ci'")
    recorded = alerts.record_crossings(tenant.pk, use, now=NOW)
    assert [(a.scope, a.subject, a.threshold, a.notified) for a in recorded] == [("key", "17", 80, True),
                                                                                 ("key", "17", 50, False)]
    assert recorded[0].period_start == start
    with django_assert_num_queries(0):  # seen: no SQL, however often settlement calls
        assert alerts.record_crossings(tenant.pk, use, now=NOW, thresholds=[50, 80, 100]) == []
    alerts.seen.clear()  # another process: it finds the row and sends nothing
    assert alerts.record_crossings(tenant.pk, use, now=NOW) == []
    asyncio.run(deliver_due(now=NOW))
    [message] = mail.outbox
    assert message.subject == "alice-co: 80% of key 'ci' reached" and "$5.00 per day" in message.body


def test_concurrent_runs_send_each_alert_once(transactional_db, team, monkeypatch):
    monkeypatch.setattr(alerts, "remember", lambda key: None)  # every copy goes to the database
    spend(team, "210")
    copies, start = 6, threading.Barrier(6)

    def copy() -> None:
        try:
            start.wait(10)
            run_job()
        finally:
            connections.close_all()
    threads = [threading.Thread(target=copy) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [m.subject for m in mail.outbox] == ["alice-co: 80% of the monthly spend cap reached"]
    assert BudgetAlert.objects.filter(tenant=team).count() == 2
    [delivery] = AlertDelivery.objects.filter(tenant=team)
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
