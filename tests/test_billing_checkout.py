"""A tenant owner upgrades through Stripe Checkout; the plan's limits apply the moment Stripe's
webhook arrives. stripe-python talks to a fake Stripe API (tests/fakes/stripe_api.py)."""

import json
from decimal import Decimal

import httpx
import openai
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing.models import Plan, PlanChange, StripeEvent, Subscription
from billing.stripe_api import API_VERSION
from gateway.models import Membership, Role
from tests.conftest import signed_in
from tests.fakes.stripe_api import signed


def deliver(event: dict, **signing):
    """POST a signed event to the webhook, as Stripe does (Django's test client, in process)."""
    body, headers = signed(event, **signing)
    return Client().post("/billing/stripe/webhook", body, content_type=headers["Content-Type"],
                         headers={"Stripe-Signature": headers["Stripe-Signature"]})


def start_checkout(browser: Client, tenant_slug: str, plan: str):
    return browser.post("/api/billing/checkout", {"tenant": tenant_slug, "plan": plan},
                        content_type="application/json")


def subscribe(fake, tenant, plan: str = "pro", *, email: str = "alice@example.com") -> str:
    """The owner checks out, pays, and Stripe's webhook arrives: the Stripe subscription id."""
    answer = start_checkout(signed_in(email), tenant.slug, plan)
    assert answer.status_code == 200, answer.content
    session_id = answer.json()["url"].rsplit("/", 1)[1]
    assert deliver(fake.complete_checkout(session_id)).status_code == 200
    return fake.sessions[session_id]["subscription"]


def ask(sdk, model="demo/echo", **extra):
    return sdk.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], **extra)


def ask_with(sdk, content: str):
    return sdk.chat.completions.with_raw_response.create(model="demo/echo",
                                                         messages=[{"role": "user", "content": content}])


def test_free_tenant_upgrades_to_pro_and_its_limits_change_at_once(stripe_fake, on_free, client, other_client,
                                                                   other_tenant, gateway_url):
    Plan.objects.filter(slug="free").update(monthly_spend_limit=Decimal("0.01"))
    big = "x" * 120_000  # at $0.10 per million input tokens, up to $0.012: over Free's cap
    assert ask(client).headers["x-ratelimit-limit-requests"] == "20"
    with pytest.raises(openai.PermissionDeniedError, match="not on plan Free"):
        ask(client, "openai/gpt-4o-mini")
    with pytest.raises(openai.RateLimitError, match="plan Free allows \\$0.01 of spend"):
        ask_with(client, big)

    answer = start_checkout(signed_in("alice@example.com"), "alice-co", "pro")
    assert answer.status_code == 200
    assert answer.json()["url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    [customer_call] = stripe_fake.requests_to("/v1/customers")
    [session_call] = stripe_fake.requests_to("/v1/checkout/sessions")
    customer_id = next(iter(stripe_fake.customers))
    assert customer_call["form"]["email"] == "alice@example.com"
    assert session_call["headers"]["Stripe-Version"] == API_VERSION
    assert session_call["form"]["mode"] == "subscription"
    assert session_call["form"]["line_items"] == [{"price": "price_pro_monthly", "quantity": "1"}]
    assert session_call["form"]["customer"] == customer_id
    assert session_call["form"]["client_reference_id"] == str(on_free.pk)
    assert session_call["form"]["success_url"].endswith("/billing?tenant=alice-co&checkout=success")
    assert Subscription.objects.get(tenant=on_free).plan.slug == "free"  # nothing paid yet

    session_id = answer.json()["url"].rsplit("/", 1)[1]
    body, headers = signed(stripe_fake.complete_checkout(session_id))
    webhook = httpx.post(f"{gateway_url}/billing/stripe/webhook", content=body, headers=headers)
    assert webhook.status_code == 200

    # The very next request, same process, no waiting for the key cache.
    assert ask(client).headers["x-ratelimit-limit-requests"] == "600"
    assert ask(client, "openai/gpt-4o-mini").parse().choices[0].message.content
    assert ask_with(client, big).parse().choices[0].message.content
    subscription = Subscription.objects.get(tenant=on_free)
    assert subscription.plan.slug == "pro" and subscription.status == "active"
    assert subscription.stripe_customer_id == customer_id
    assert subscription.stripe_subscription_id == stripe_fake.sessions[session_id]["subscription"]
    assert subscription.current_period_end is not None
    [change] = PlanChange.objects.filter(tenant=on_free)
    assert (change.from_plan.slug, change.to_plan.slug) == ("free", "pro")
    assert change.stripe_event_id == StripeEvent.objects.get().stripe_event_id
    assert "Plan: Pro" in signed_in("alice@example.com").get("/billing", follow=True).content.decode()

    # Charlie's tenant: untouched.
    assert Subscription.objects.get(tenant=other_tenant).stripe_customer_id == ""
    assert not PlanChange.objects.filter(tenant=other_tenant).exists()
    assert ask(other_client).headers["x-ratelimit-limit-requests"] == "600"


def test_the_page_form_redirects_to_checkout(stripe_fake, on_free):
    browser = signed_in("alice@example.com")
    page = browser.get("/billing", follow=True).content.decode()
    assert "Plan: Free" in page and 'name="plan" value="pro"' in page
    answer = browser.post("/api/billing/checkout", {"tenant": "alice-co", "plan": "pro"})
    assert answer.status_code == 303
    assert answer["Location"].startswith("https://checkout.stripe.com/c/pay/")


def test_only_owners_and_billing_members_start_checkout(stripe_fake, on_free, other_tenant):
    User = get_user_model()
    member = User.objects.create_user("bob@example.com", "bob@example.com")
    Membership.objects.create(tenant=on_free, user=member, role=Role.MEMBER)
    payer = User.objects.create_user("pay@example.com", "pay@example.com")
    Membership.objects.create(tenant=on_free, user=payer, role=Role.BILLING)

    assert start_checkout(Client(), "alice-co", "pro").status_code == 401
    assert start_checkout(signed_in("bob@example.com"), "alice-co", "pro").status_code == 403
    # Charlie owns his own tenant, not Alice's: for him it does not exist.
    assert start_checkout(signed_in("charlie@example.com"), "alice-co", "pro").status_code == 404
    assert signed_in("charlie@example.com").get("/billing?tenant=alice-co").status_code == 404
    assert "Upgrade" not in signed_in("bob@example.com").get("/billing", follow=True).content.decode()
    assert stripe_fake.requests == []

    assert start_checkout(signed_in("pay@example.com"), "alice-co", "pro").status_code == 200
    assert start_checkout(signed_in("pay@example.com"), "alice-co", "nope").status_code == 400


def test_checkout_reuses_the_customer_and_an_existing_subscription_goes_to_the_portal(stripe_fake, on_free,
                                                                                     other_tenant):
    browser = signed_in("alice@example.com")
    start_checkout(browser, "alice-co", "basic")
    subscribe(stripe_fake, on_free, "pro")
    assert len(stripe_fake.customers) == 1  # the abandoned basic checkout's customer, reused

    again = start_checkout(browser, "alice-co", "enterprise")
    assert again.status_code == 409 and "portal" in again.json()["error"]["message"]
    portal = browser.post("/api/billing/portal", {"tenant": "alice-co"}, content_type="application/json")
    assert portal.status_code == 200
    assert portal.json()["url"].startswith("https://billing.stripe.com/p/session/")
    [portal_call] = stripe_fake.requests_to("/v1/billing_portal/sessions")
    assert portal_call["form"]["customer"] == Subscription.objects.get(tenant=on_free).stripe_customer_id
    assert portal_call["form"]["return_url"].endswith("/billing?tenant=alice-co")

    charlie = signed_in("charlie@example.com")
    assert charlie.post("/api/billing/portal", {"tenant": "alice-co"},
                        content_type="application/json").status_code == 404
    no_customer = charlie.post("/api/billing/portal", {"tenant": "charlie-co"}, content_type="application/json")
    assert no_customer.status_code == 409
    assert Subscription.objects.get(tenant=other_tenant).plan.slug == "pro"


def test_stripe_down_during_checkout_is_a_clear_503(stripe_fake, on_free):
    stripe_fake.unavailable = True
    answer = start_checkout(signed_in("alice@example.com"), "alice-co", "pro")
    assert answer.status_code == 503 and "try again" in answer.json()["error"]["message"]
    assert Subscription.objects.get(tenant=on_free).stripe_customer_id == ""


def test_without_stripe_keys_billing_says_it_is_not_configured(catalog, settings, on_free, other_tenant):
    settings.STRIPE_SECRET_KEY = settings.STRIPE_WEBHOOK_SECRET = settings.STRIPE_API_BASE = ""
    browser = signed_in("alice@example.com")
    page = browser.get("/billing", follow=True)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Billing is not configured" in text and "Plan: Free" in text and "Upgrade" not in text
    assert start_checkout(browser, "alice-co", "pro").status_code == 503
    assert browser.post("/api/billing/portal", {"tenant": "alice-co"},
                        content_type="application/json").status_code == 503
    webhook = Client().post("/billing/stripe/webhook", json.dumps({"id": "evt_1", "object": "event"}),
                            content_type="application/json", headers={"Stripe-Signature": "t=1,v1=00"})
    assert webhook.status_code == 503
    assert not StripeEvent.objects.exists()


def test_operator_assigns_a_plan_in_the_admin_with_an_audit_row(catalog, settings, on_free, client, other_tenant):
    settings.STRIPE_SECRET_KEY = ""
    assert ask(client).headers["x-ratelimit-limit-requests"] == "20"
    operator = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-tests-only")
    admin = Client()
    admin.force_login(operator)
    subscription = Subscription.objects.get(tenant=on_free)
    enterprise = Plan.objects.get(slug="enterprise")
    answer = admin.post(f"/admin/billing/subscription/{subscription.pk}/change/", {
        "tenant": on_free.pk, "plan": enterprise.pk, "status": "active", "stripe_customer_id": "",
        "stripe_subscription_id": ""})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert ask(client).headers["x-ratelimit-limit-requests"] == "6000"
    [change] = PlanChange.objects.all()
    assert (change.tenant_id, change.from_plan.slug, change.to_plan.slug, change.actor) == (
        on_free.pk, "free", "enterprise", operator)
    assert Subscription.objects.get(tenant=other_tenant).plan.slug == "pro"
    for page in ("planchange", "stripeevent", "overagereport"):
        assert admin.get(f"/admin/billing/{page}/").status_code == 200
        assert admin.get(f"/admin/billing/{page}/add/").status_code == 403
