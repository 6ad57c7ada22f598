"""A pay-as-you-go tenant spends its credits: each request is held on what is left to spend and
settled at its cost, so at zero (or too little for the request) it gets 429 insufficient_quota
with the link to buy more; the background job debits settled usage into the credit ledger once
per period (the balance always its entries' sum) and tops the account up, once per crossing,
when what is left falls below the threshold."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from billing import credit_debits, credits, spend_holds
from billing.models import (
    AutoTopUp,
    CreditAccount,
    CreditEntry,
    CreditEntryKind,
    Plan,
    Subscription,
)
from billing.spend_holds import HoldRequest
from gateway.background import PERIODIC_JOBS, run_due
from tests.test_billing_auto_top_up import prepaid_with_auto_top_up, top_up_entries
from tests.test_billing_credit_checkout import billing_page
from tests.test_key_budgets import COST, refusal, settle_request, spend

DEBIT_JOB = tuple(job for job in PERIODIC_JOBS if job.name == "debit_credits")


@pytest.fixture
def prepaid(tenant):
    Subscription.objects.filter(tenant=tenant).update(plan=Plan.objects.get(slug="payg"))
    return tenant


def test_at_zero_credits_requests_are_refused_with_the_link_to_buy_more(client, prepaid, other_client, gateway_url):
    refused = refusal(client)
    assert refused.body["message"] == (
        "You exceeded your current quota: your prepaid credits are used up, and this request could cost up to "
        f"$0.010025. Buy credits at {gateway_url}/t/alice-co/billing/, or lower max_tokens.")
    assert other_client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "hi"}])


def test_requests_draw_the_credits_down_and_the_job_debits_them_once(client, prepaid, other_tenant, fake_openai):
    credits.adjust_credits(prepaid.pk, Decimal("0.05"), reason="test credits")
    spend(client, fake_openai, 4)  # $0.0401 of $0.05
    refused = refusal(client)
    assert "your prepaid credits ($0.009900 available) do not cover this request" in refused.body["message"]
    account = CreditAccount.objects.get(tenant=prepaid)
    assert (account.balance, account.spent_undebited, account.reserved) == (Decimal("0.05"), 4 * COST, 0)
    page = billing_page().content.decode()
    assert "Balance: <strong>$0.05</strong>" in page and "Left to spend: <strong>$0.0099</strong>" in page

    later = timezone.now() + timedelta(hours=1)
    assert asyncio.run(run_due(DEBIT_JOB, holder="node-a", clock=lambda: later)) == ["debit_credits"]
    assert asyncio.run(run_due(DEBIT_JOB, holder="node-b", clock=lambda: later)) == []  # once per period
    [debit] = CreditEntry.objects.filter(tenant=prepaid, kind=CreditEntryKind.USAGE)
    assert debit.amount == -4 * COST
    account.refresh_from_db()
    assert account.balance == credits.ledger_balance(prepaid.pk) == Decimal("0.05") - 4 * COST
    assert account.spent_undebited == 0
    assert credit_debits.debit_settled_usage() == []  # nothing left to debit
    refusal(client)  # what is left is the same after the debit
    assert not CreditEntry.objects.filter(tenant=other_tenant).exists()


def settle_usage(tenant, amount: str, *, request_id: str = "") -> None:
    """A request that cost ``amount`` held on the credits and settled."""
    settle_request(tenant, amount, request_id=request_id or f"spend-{amount}", prepaid=True)


def test_usage_below_the_threshold_tops_up_once_before_and_after_the_debit(stripe_fake, on_free):
    prepaid_with_auto_top_up(stripe_fake, on_free)  # $10 bought; below $5, $20 is charged
    settle_usage(on_free, "6")  # $4 left, though the balance still reads $10 until the debit
    [attempt] = credit_debits.top_up_low_accounts()
    assert attempt.status == "succeeded" and top_up_entries(on_free) == [Decimal("20")]
    assert credit_debits.top_up_low_accounts() == []  # once per crossing

    [debit] = credit_debits.debit_settled_usage()
    assert debit.amount == Decimal("-6")
    assert credit_debits.top_up_low_accounts() == []  # the debit is no new crossing
    account = CreditAccount.objects.get(tenant=on_free)
    assert account.balance == credits.ledger_balance(on_free.pk) == Decimal("24")
    assert AutoTopUp.objects.filter(tenant=on_free).count() == 1

    settle_usage(on_free, "20")  # $4 left again: a new crossing
    entries = asyncio.run(run_due(DEBIT_JOB, holder="node-a"))
    assert entries == ["debit_credits"] and top_up_entries(on_free) == [Decimal("20"), Decimal("20")]
    account.refresh_from_db()
    assert account.balance == credits.ledger_balance(on_free.pk) == Decimal("24")


def test_a_request_that_exactly_uses_up_the_credits_is_held(prepaid, other_tenant):
    credits.adjust_credits(prepaid.pk, Decimal("0.30"), reason="test credits")
    settle_usage(prepaid, "0.10", request_id="first")
    settle_usage(prepaid, "0.10", request_id="second")
    settle_usage(prepaid, "0.10", request_id="third")  # $0.30 - $0.20 is $0.10 exactly (not in floats)
    account = CreditAccount.objects.get(tenant=prepaid)
    assert (account.spent_undebited, account.reserved) == (Decimal("0.30"), 0)
    with transaction.atomic():
        refused = spend_holds.hold(HoldRequest("fourth", prepaid.pk, None, "", Decimal("0.0000000001"), True,
                                               timezone.now()))
    assert refused.scope == spend_holds.CREDITS and refused.available == 0
    assert not CreditAccount.objects.filter(tenant=other_tenant).exists()
