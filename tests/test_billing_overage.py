"""Spend past a plan's included amount reaches Stripe as Billing Meter events: once, never
twice, never lost, and equal to what the usage records say."""

import io
from decimal import ROUND_FLOOR, Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from billing.models import OverageReport, Plan, Subscription
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from tests.test_billing_checkout import ask, subscribe
from usage.models import UsageRecord

INCLUDED = Decimal("1.00")
UNIT = Decimal("0.01")


@pytest.fixture
def stripe_fake(stripe_fake):
    """The shared fake, with Pro allowing metered overage."""
    Plan.objects.filter(slug="pro").update(
        allows_overage=True, included_monthly_spend=INCLUDED, overage_unit_amount=UNIT,
        overage_meter_event_name="tollgate_overage", stripe_overage_price_id="price_overage_metered")
    return stripe_fake


@pytest.fixture
def subscribed(stripe_fake, tenant):
    Subscription.objects.filter(tenant=tenant).update(plan=Plan.objects.get(slug="free"))
    subscribe(stripe_fake, tenant, "pro")
    return tenant


@pytest.fixture
def spend(fake_openai):
    def run(sdk, tenant, *, prompt_tokens: int) -> None:
        """One gpt-4o request the upstream reports as ``prompt_tokens`` long ($2.50 per million)."""
        before = UsageRecord.objects.filter(tenant=tenant).count()
        fake_openai.enqueue(Reply(usage={"prompt_tokens": prompt_tokens, "completion_tokens": 5,
                                         "total_tokens": prompt_tokens + 5}))
        ask(sdk, "openai/gpt-4o", max_tokens=10)
        wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).count() > before, what="the usage record")

    return run


def expected_units(tenant) -> int:
    total = UsageRecord.objects.filter(tenant=tenant).aggregate(total=Sum("cost"))["total"] or Decimal(0)
    return max(0, int(((Decimal(total) - INCLUDED) / UNIT).to_integral_value(rounding=ROUND_FLOOR)))


def report_overage() -> str:
    out = io.StringIO()
    call_command("report_overage", stdout=out)
    return out.getvalue()


def meter_calls(fake) -> list[dict]:
    return [r["form"] for r in fake.requests_to("/v1/billing/meter_events")]


def test_checkout_adds_the_metered_price(subscribed, stripe_fake):
    [session_call] = stripe_fake.requests_to("/v1/checkout/sessions")
    assert session_call["form"]["line_items"] == [{"price": "price_pro_monthly", "quantity": "1"},
                                                  {"price": "price_overage_metered"}]
    assert Subscription.objects.get(tenant=subscribed).plan.slug == "pro"  # the metered item maps to no plan


def test_overage_is_sent_exactly_once_across_runs(subscribed, stripe_fake, client, other_tenant, other_client, spend):
    spend(client, subscribed, prompt_tokens=200_000)  # $0.50: within the included $1.00
    assert report_overage() == "no new overage\n"
    assert meter_calls(stripe_fake) == []

    spend(client, subscribed, prompt_tokens=600_000)  # $1.50 more: $1.00 over
    spend(other_client, other_tenant, prompt_tokens=2_000_000)  # Charlie's spend is Charlie's
    units = expected_units(subscribed)
    assert units == 100
    first = report_overage()
    assert first.startswith("sent tollgate-overage-")
    assert report_overage() == "no new overage\n"  # the second run finds nothing new

    [call] = meter_calls(stripe_fake)
    customer_id = Subscription.objects.get(tenant=subscribed).stripe_customer_id
    assert call["event_name"] == "tollgate_overage"
    assert call["payload"] == {"stripe_customer_id": customer_id, "value": str(units)}
    assert call["identifier"] and call["timestamp"].isdigit()

    spend(client, subscribed, prompt_tokens=100_000)  # $0.25 more
    report_overage()
    report_overage()
    calls = meter_calls(stripe_fake)
    assert len(calls) == 2 and len({c["identifier"] for c in calls}) == 2
    assert sum(int(c["payload"]["value"]) for c in calls) == expected_units(subscribed) == 125
    reports = OverageReport.objects.filter(tenant=subscribed)
    assert all(r.sent_at for r in reports) and max(r.total_units for r in reports) == 125
    assert not OverageReport.objects.filter(tenant=other_tenant).exists()  # no Stripe customer, no meter
    assert all(c["payload"]["stripe_customer_id"] == customer_id for c in calls)


def test_an_unsent_event_is_sent_by_the_next_run_with_the_same_identifier(subscribed, stripe_fake, client, spend,
                                                                          other_tenant):
    spend(client, subscribed, prompt_tokens=1_000_000)  # $2.50: 150 units over
    stripe_fake.fail_meter_events = 1
    with pytest.raises(CommandError, match="not sent"):
        report_overage()
    [kept] = OverageReport.objects.filter(tenant=subscribed)
    assert kept.sent_at is None and kept.units == expected_units(subscribed) == 150

    assert report_overage().startswith(f"sent {kept.identifier}: 150 units")
    assert report_overage() == "no new overage\n"
    calls = meter_calls(stripe_fake)
    assert [c["identifier"] for c in calls] == [kept.identifier, kept.identifier]  # the failed try, the resend
    assert stripe_fake.counted_identifiers == [kept.identifier]
    assert OverageReport.objects.get(pk=kept.pk).sent_at is not None
    assert not OverageReport.objects.filter(tenant=other_tenant).exists()


def test_without_stripe_the_command_says_so(catalog, settings):
    settings.STRIPE_SECRET_KEY = ""
    assert "not configured" in report_overage()
