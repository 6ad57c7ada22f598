"""Plans and credits together: a subscription plan may include credits each month (a grant in the
credit ledger, once per tenant and month), and may let requests past its monthly spend limit go on,
paid from the tenant's credits (bought or included) until they run out."""

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing import credit_debits, credit_grants, credits
from billing.models import (
    CreditAccount,
    CreditEntry,
    CreditEntryKind,
    Plan,
    PlanChangeReason,
    Subscription,
)
from billing.subscriptions import change_plan
from gateway.background import PERIODIC_JOBS, run_due
from tests.conftest import wait_for
from tests.test_key_budgets import COST, refusal, spend
from usage.models import MonthlySpend, UsageRecord

GRANT_JOB = tuple(job for job in PERIODIC_JOBS if job.name == "grant_credits")
DECEMBER = datetime(2026, 12, 7, 12, tzinfo=UTC)


def grants(tenant) -> list[tuple[Decimal, datetime]]:
    return list(CreditEntry.objects.filter(tenant=tenant, kind=CreditEntryKind.GRANT).order_by("period_start")
                .values_list("amount", "period_start"))


def test_a_plan_grants_its_credits_once_per_tenant_and_month(tenant, other_tenant):
    Plan.objects.filter(slug="pro").update(monthly_credits=Decimal("20.00"))
    Subscription.objects.filter(tenant=other_tenant).update(plan=Plan.objects.get(slug="free"))

    assert [entry.tenant_id for entry in credit_grants.grant_monthly_credits(now=DECEMBER)] == [tenant.pk]
    assert credit_grants.grant_monthly_credits(now=DECEMBER) == []  # once a month, however often it runs
    assert asyncio.run(run_due(GRANT_JOB, holder="node-a", clock=lambda: DECEMBER)) == ["grant_credits"]
    assert credit_grants.grant_monthly_credits(now=datetime(2027, 1, 2, tzinfo=UTC))  # January's
    assert grants(tenant) == [(Decimal("20.00"), datetime(2026, 12, 1, tzinfo=UTC)),
                              (Decimal("20.00"), datetime(2027, 1, 1, tzinfo=UTC))]
    assert CreditAccount.objects.get(tenant=tenant).balance == credits.ledger_balance(tenant.pk) == Decimal("40")
    assert grants(other_tenant) == []


def test_moving_to_a_plan_with_credits_grants_the_month_at_once(other_tenant):
    team = Plan.objects.get(slug="pro")
    team.monthly_credits = Decimal("5.00")
    team.save()
    subscription = Subscription.objects.get(tenant=other_tenant)
    subscription.plan = Plan.objects.get(slug="free")
    subscription.save()
    assert change_plan(subscription, team, reason=PlanChangeReason.OPERATOR)
    assert [amount for amount, _ in grants(other_tenant)] == [Decimal("5.00")]
    assert "Included in plan Pro" in CreditEntry.objects.get(tenant=other_tenant).reason


@pytest.fixture
def overage_plan(tenant):
    # One request (COST, $0.010025 at most) fits under the cap; past it, credits pay.
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("0.02"), credit_overage=True)
    return tenant


def test_past_the_cap_requests_are_paid_from_credits_until_they_run_out(client, other_client, fake_openai,
                                                                        overage_plan, other_tenant):
    credits.adjust_credits(overage_plan.pk, Decimal("0.03"), reason="test credits")
    spend(client, fake_openai, 3)  # one under the cap, two past it on credits
    refused = refusal(client)  # $0.00995 of credits left: less than a request could cost
    assert "plan Pro allows $0.02 of spend per month, past which requests are paid from credits" in (
        refused.body["message"])
    assert "/t/alice-co/billing/" in refused.body["message"]

    ledger = wait_for(lambda: MonthlySpend.objects.filter(tenant=overage_plan, reserved=0).first(), what="settled")
    assert ledger.settled == 3 * COST == sum(r.cost for r in UsageRecord.objects.filter(tenant=overage_plan))
    account = CreditAccount.objects.get(tenant=overage_plan)
    assert (account.spent_undebited, account.reserved) == (2 * COST, 0)  # the two past the cap, no more
    [debit] = credit_debits.debit_settled_usage()  # the periodic job draws them down like a prepaid tenant's
    assert debit.amount == -2 * COST and credits.ledger_balance(overage_plan.pk) == Decimal("0.03") - 2 * COST
    assert other_client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "hi"}])


def test_without_credit_overage_the_cap_stops_requests(client, fake_openai, overage_plan):
    Plan.objects.filter(slug="pro").update(credit_overage=False)
    credits.adjust_credits(overage_plan.pk, Decimal("1.00"), reason="test credits")
    spend(client, fake_openai, 1)
    assert "allows $0.02 of spend per month" in refusal(client).body["message"]
    assert CreditAccount.objects.get(tenant=overage_plan).spent_undebited == 0


def test_credit_overage_needs_a_cap_and_no_other_overage(tenant):
    plan = Plan.objects.get(slug="pro")
    plan.credit_overage, plan.monthly_spend_limit = True, None
    with pytest.raises(ValidationError, match="set the limit"):
        plan.clean()
    plan.monthly_spend_limit, plan.allows_overage = Decimal("100"), True
    with pytest.raises(ValidationError):
        plan.clean()
