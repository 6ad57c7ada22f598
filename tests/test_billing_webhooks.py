"""No Stripe webhook, however duplicated, late, out of order or forged, leaves a tenant on the
wrong plan; every real plan change leaves one audit row."""

import threading
import time

import openai
import pytest
from django.db import connections
from django.test import Client

from billing.models import PlanChange, StripeEvent, Subscription
from tests.fakes.stripe_api import sign, signed
from tests.test_billing_checkout import ask, deliver, signed_in, start_checkout, subscribe


def plan_of(tenant) -> str:
    return Subscription.objects.get(tenant=tenant).plan.slug


def paid_checkout(fake, tenant) -> dict:
    """Checkout started and paid at Stripe; returns checkout.session.completed, not yet delivered."""
    answer = start_checkout(signed_in("alice@example.com"), tenant.slug, "pro")
    return fake.complete_checkout(answer.json()["url"].rsplit("/", 1)[1])


def test_the_same_event_twice_acts_once(stripe_fake, on_free, other_tenant):
    event = paid_checkout(stripe_fake, on_free)
    first, second = deliver(event), deliver(event)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["duplicate"] is True
    assert plan_of(on_free) == "pro"
    assert StripeEvent.objects.count() == 1
    assert PlanChange.objects.count() == 1
    assert len(stripe_fake.requests_to(f"/v1/subscriptions/{event['data']['object']['subscription']}")) == 1
    assert plan_of(other_tenant) == "pro" and not PlanChange.objects.filter(tenant=other_tenant).exists()


def test_concurrent_duplicate_deliveries_act_once(stripe_fake, on_free, other_tenant):
    event = paid_checkout(stripe_fake, on_free)
    body, headers = signed(event)
    start = threading.Barrier(4)
    statuses = []

    def post():
        try:
            start.wait()
            answer = Client().post("/billing/stripe/webhook", body, content_type=headers["Content-Type"],
                                   headers={"Stripe-Signature": headers["Stripe-Signature"]})
            statuses.append((answer.status_code, answer.json().get("duplicate", False)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [(200, False), (200, True), (200, True), (200, True)]
    assert plan_of(on_free) == "pro"
    assert StripeEvent.objects.count() == 1 and PlanChange.objects.count() == 1
    assert not PlanChange.objects.filter(tenant=other_tenant).exists()


def test_subscription_update_before_checkout_completed(stripe_fake, on_free, other_tenant):
    completed = paid_checkout(stripe_fake, on_free)
    subscription_id = completed["data"]["object"]["subscription"]
    updated = stripe_fake.event("customer.subscription.updated", stripe_fake.update_subscription(subscription_id),
                                previous_attributes={"status": "incomplete"})
    assert deliver(updated).status_code == 200
    assert plan_of(on_free) == "pro"
    assert deliver(completed).status_code == 200
    subscription = Subscription.objects.get(tenant=on_free)
    assert (subscription.plan.slug, subscription.stripe_subscription_id) == ("pro", subscription_id)
    assert PlanChange.objects.count() == 1
    assert StripeEvent.objects.count() == 2
    assert plan_of(other_tenant) == "pro"


def test_a_late_event_cannot_roll_back_a_newer_state(stripe_fake, on_free, other_tenant):
    """The portal moved Alice from Pro to Basic; the Pro-era event arrives last."""
    subscription_id = subscribe(stripe_fake, on_free, "pro")
    stale = stripe_fake.event("customer.subscription.updated", stripe_fake.update_subscription(subscription_id))
    fresh = stripe_fake.event("customer.subscription.updated",
                              stripe_fake.swap_price(subscription_id, "price_basic_monthly"))
    assert deliver(fresh).status_code == 200
    assert plan_of(on_free) == "basic"
    assert deliver(stale).status_code == 200  # its body says Pro; Stripe says Basic
    assert plan_of(on_free) == "basic"
    assert [(c.from_plan.slug, c.to_plan.slug) for c in PlanChange.objects.order_by("id")] == [
        ("free", "pro"), ("pro", "basic")]
    assert plan_of(other_tenant) == "pro"


@pytest.mark.parametrize("tamper", ["wrong secret", "stale", "body changed", "no header", "not json"])
def test_forged_or_stale_signatures_get_400_and_change_nothing(stripe_fake, on_free, other_tenant, tamper):
    event = paid_checkout(stripe_fake, on_free)
    body, headers = signed(event)
    if tamper == "wrong secret":
        body, headers = signed(event, secret="whsec_someone_else")
    elif tamper == "stale":
        body, headers = signed(event, timestamp=int(time.time()) - 301)
    elif tamper == "body changed":
        body = body.replace(b'"livemode": false', b'"livemode": true ')
    elif tamper == "no header":
        headers["Stripe-Signature"] = ""
    elif tamper == "not json":
        body, headers = b"not json", {"Stripe-Signature": sign("not json")}
    answer = Client().post("/billing/stripe/webhook", body, content_type="application/json",
                           headers={"Stripe-Signature": headers["Stripe-Signature"]})
    assert answer.status_code == 400
    assert plan_of(on_free) == "free"
    assert not StripeEvent.objects.exists() and not PlanChange.objects.exists()
    assert stripe_fake.requests_to(f"/v1/subscriptions/{event['data']['object']['subscription']}") == []
    assert plan_of(other_tenant) == "pro"


def test_unknown_event_types_are_acknowledged_and_ignored(stripe_fake, on_free):
    answer = deliver(stripe_fake.event("customer.created", {"id": "cus_x", "object": "customer"}))
    assert answer.status_code == 200 and answer.json()["ignored"] is True
    assert not StripeEvent.objects.exists()
    assert stripe_fake.requests == []


def test_stripe_unreachable_while_refetching_is_503_and_the_redelivery_acts(stripe_fake, on_free, other_tenant):
    event = paid_checkout(stripe_fake, on_free)
    stripe_fake.unavailable = True
    assert deliver(event).status_code == 503
    assert plan_of(on_free) == "free" and not StripeEvent.objects.exists()
    stripe_fake.unavailable = False
    assert deliver(event).status_code == 200
    assert plan_of(on_free) == "pro" and PlanChange.objects.count() == 1
    assert plan_of(other_tenant) == "pro"


def test_an_event_for_another_tenants_customer_does_not_touch_this_one(stripe_fake, on_free, other_tenant):
    """A subscription Stripe knows but no tenant of ours owns is ignored."""
    subscribe(stripe_fake, on_free, "pro")
    foreign = stripe_fake.complete_checkout(paid_checkout_session_for_stranger(stripe_fake))
    assert deliver(foreign).status_code == 200
    assert plan_of(on_free) == "pro" and plan_of(other_tenant) == "pro"
    assert PlanChange.objects.count() == 1


def paid_checkout_session_for_stranger(fake) -> str:
    session_id = fake.new_id("cs_test")
    fake.customers["cus_stranger"] = {"id": "cus_stranger"}
    fake.sessions[session_id] = {"id": session_id, "object": "checkout.session", "mode": "subscription",
                                 "customer": "cus_stranger", "client_reference_id": None, "metadata": {},
                                 "line_items_requested": [{"price": "price_enterprise_monthly", "quantity": "1"}],
                                 "subscription_data_requested": {}}
    return session_id


def test_plan_change_in_the_portal_applies_at_once(stripe_fake, on_free, client, other_client):
    subscription_id = subscribe(stripe_fake, on_free, "enterprise")
    assert ask(client, "openai/gpt-4o").parse().choices
    event = stripe_fake.event("customer.subscription.updated",
                              stripe_fake.swap_price(subscription_id, "price_basic_monthly"),
                              previous_attributes={"items": {}})
    assert deliver(event).status_code == 200
    with pytest.raises(openai.PermissionDeniedError, match="not on plan Basic"):
        ask(client, "openai/gpt-4o")
    assert ask(other_client, "openai/gpt-4o").parse().choices  # Charlie's Pro still has frontier models
