"""A failed payment shows a banner and keeps the plan through its grace period, then Free limits
until the invoice is paid; a cancellation keeps the plan to the end of the period, then Free."""

import io
from datetime import timedelta

import openai
import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.models import Plan, PlanChange, PlanChangeReason, Subscription
from tests.test_billing_checkout import ask, deliver, signed_in, subscribe


def expire_grace_periods() -> str:
    out = io.StringIO()
    call_command("expire_grace_periods", stdout=out)
    return out.getvalue()


def billing_page() -> str:
    return signed_in("alice@example.com").get("/billing", follow=True).content.decode()


def changes() -> list[tuple[str, str, str]]:
    return [(c.from_plan.slug, c.to_plan.slug, c.reason) for c in PlanChange.objects.order_by("id")]


def test_payment_failure_grace_downgrade_payment_restore(stripe_fake, on_free, client, other_tenant, other_client):
    subscription_id = subscribe(stripe_fake, on_free, "pro")
    assert ask(client, "openai/gpt-4o-mini").parse().choices

    stripe_fake.update_subscription(subscription_id, status="past_due")
    failed = stripe_fake.event("invoice.payment_failed", stripe_fake.invoice(subscription_id, paid=False))
    assert deliver(failed).status_code == 200
    subscription = Subscription.objects.get(tenant=on_free)
    assert (subscription.plan.slug, subscription.status) == ("pro", "past_due")
    assert subscription.past_due_since is not None
    assert "Payment failed" in billing_page() and "Update the card before" in billing_page()
    assert ask(client, "openai/gpt-4o-mini").parse().choices  # within grace: still Pro
    assert expire_grace_periods() == "no grace period ended\n"
    assert "Payment failed" not in signed_in("charlie@example.com").get("/billing", follow=True).content.decode()

    # Seven days (Pro's grace) pass: the clock is the only thing moved.
    Subscription.objects.filter(tenant=on_free).update(past_due_since=timezone.now() - timedelta(days=7, seconds=1))
    assert expire_grace_periods() == "alice-co: grace period over, now on Free\n"
    assert Subscription.objects.get(tenant=on_free).plan.slug == "free"
    with pytest.raises(openai.PermissionDeniedError, match="not on plan Free"):
        ask(client, "openai/gpt-4o-mini")
    assert ask(client).headers["x-ratelimit-limit-requests"] == "20"
    assert "grace period is over" in billing_page()
    assert deliver(stripe_fake.event("invoice.payment_failed",  # Stripe's next retry fails too
                                     stripe_fake.invoice(subscription_id, paid=False))).status_code == 200
    assert Subscription.objects.get(tenant=on_free).plan.slug == "free"
    assert expire_grace_periods() == "no grace period ended\n"

    stripe_fake.update_subscription(subscription_id, status="active")
    paid = stripe_fake.event("invoice.paid", stripe_fake.invoice(subscription_id, paid=True))
    assert deliver(paid).status_code == 200
    subscription = Subscription.objects.get(tenant=on_free)
    assert (subscription.plan.slug, subscription.status, subscription.past_due_since) == ("pro", "active", None)
    assert ask(client, "openai/gpt-4o-mini").parse().choices
    assert "Payment failed" not in billing_page()
    assert changes() == [("free", "pro", PlanChangeReason.STRIPE), ("pro", "free", PlanChangeReason.GRACE_EXPIRED),
                         ("free", "pro", PlanChangeReason.STRIPE)]

    # The first failure's event, delivered once more after the payment: Stripe says active.
    assert deliver(failed).json()["duplicate"] is True
    late = stripe_fake.event("invoice.payment_failed", stripe_fake.invoice(subscription_id, paid=False))
    assert deliver(late).status_code == 200
    assert Subscription.objects.get(tenant=on_free).status == "active"
    assert len(changes()) == 3
    assert Subscription.objects.get(tenant=other_tenant).status == "active"
    assert ask(other_client, "openai/gpt-4o-mini").parse().choices


def test_grace_days_are_the_plans(stripe_fake, on_free, other_tenant):
    Plan.objects.filter(slug="pro").update(grace_days=0)
    subscription_id = subscribe(stripe_fake, on_free, "pro")
    stripe_fake.update_subscription(subscription_id, status="past_due")
    deliver(stripe_fake.event("invoice.payment_failed", stripe_fake.invoice(subscription_id, paid=False)))
    assert Subscription.objects.get(tenant=on_free).plan.slug == "free"
    assert changes()[-1] == ("pro", "free", PlanChangeReason.GRACE_EXPIRED)
    assert Subscription.objects.get(tenant=other_tenant).plan.slug == "pro"


def test_stripe_giving_up_on_payment_means_free_until_paid(stripe_fake, on_free, other_tenant):
    subscription_id = subscribe(stripe_fake, on_free, "pro")
    unpaid = stripe_fake.update_subscription(subscription_id, status="unpaid")
    deliver(stripe_fake.event("customer.subscription.updated", unpaid, previous_attributes={"status": "past_due"}))
    subscription = Subscription.objects.get(tenant=on_free)
    assert (subscription.plan.slug, subscription.status) == ("free", "past_due")
    assert subscription.stripe_subscription_id == subscription_id
    assert Subscription.objects.get(tenant=other_tenant).plan.slug == "pro"


def test_cancellation_keeps_the_plan_until_the_period_ends_then_free(stripe_fake, on_free, client, other_tenant):
    subscription_id = subscribe(stripe_fake, on_free, "pro")
    period_end = stripe_fake.subscriptions[subscription_id]["items"]["data"][0]["current_period_end"]
    canceling = stripe_fake.update_subscription(subscription_id, cancel_at_period_end=True, cancel_at=period_end)
    deliver(stripe_fake.event("customer.subscription.updated", canceling,
                              previous_attributes={"cancel_at_period_end": False}))
    subscription = Subscription.objects.get(tenant=on_free)
    assert (subscription.plan.slug, subscription.cancel_at_period_end) == ("pro", True)
    assert int(subscription.current_period_end.timestamp()) == period_end
    assert "stays until" in billing_page()
    assert ask(client, "openai/gpt-4o-mini").parse().choices

    ended = stripe_fake.update_subscription(subscription_id, status="canceled", ended_at=period_end,
                                            canceled_at=period_end)
    deleted = stripe_fake.event("customer.subscription.deleted", ended)
    assert deliver(deleted).status_code == 200
    subscription = Subscription.objects.get(tenant=on_free)
    assert (subscription.plan.slug, subscription.status, subscription.stripe_subscription_id) == ("free", "active", "")
    assert subscription.stripe_customer_id  # kept: the next checkout reuses it
    with pytest.raises(openai.PermissionDeniedError):
        ask(client, "openai/gpt-4o-mini")
    assert ask(client).parse().choices  # Free still works

    # The cancellation's update, delivered late: Stripe says canceled, and it is no longer ours.
    late = stripe_fake.event("customer.subscription.updated", ended)
    assert deliver(late).status_code == 200 and deliver(deleted).json()["duplicate"] is True
    assert changes() == [("free", "pro", PlanChangeReason.STRIPE), ("pro", "free", PlanChangeReason.STRIPE)]
    assert Subscription.objects.get(tenant=other_tenant).plan.slug == "pro"

    # Alice comes back: a new checkout, a new subscription.
    subscribe(stripe_fake, on_free, "basic")
    assert Subscription.objects.get(tenant=on_free).plan.slug == "basic"
    assert len(stripe_fake.customers) == 1


def test_a_payment_whose_webhook_was_lost_restores_instead_of_dropping(stripe_fake, on_free, other_tenant):
    subscription_id = subscribe(stripe_fake, on_free, "pro")
    stripe_fake.update_subscription(subscription_id, status="past_due")
    deliver(stripe_fake.event("invoice.payment_failed", stripe_fake.invoice(subscription_id, paid=False)))
    Subscription.objects.filter(tenant=on_free).update(past_due_since=timezone.now() - timedelta(days=8))
    stripe_fake.update_subscription(subscription_id, status="active")  # paid; invoice.paid never arrives

    assert expire_grace_periods() == "no grace period ended\n"
    subscription = Subscription.objects.get(tenant=on_free)
    assert (subscription.plan.slug, subscription.status, subscription.past_due_since) == ("pro", "active", None)
    assert changes() == [("free", "pro", PlanChangeReason.STRIPE)]
    assert Subscription.objects.get(tenant=other_tenant).status == "active"
