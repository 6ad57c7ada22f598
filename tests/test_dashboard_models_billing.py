"""The models page (what the plan allows, with prices) and the billing page (plan, limits, this
month's use, upgrades through Stripe Checkout, the portal, invoices, the past-due banner).
Stripe is the fake API of tests/fakes/stripe_api.py. Charlie never sees Alice's pages."""

import re
from decimal import Decimal

from django.test import Client
from django.utils import timezone

from billing.models import Plan, Subscription
from gateway.models import Role
from providers.models import Model
from tests.conftest import add_member, signed_in
from tests.test_billing_checkout import deliver, subscribe
from usage.models import DailyUsage, MonthlySpend

PASSWORD = "correct horse battery staple"


def model_ids(page: str) -> list[str]:
    return re.findall(r'<tr data-testid="model-([^"]+)">', page)


def model_row(page: str, public_id: str) -> str:
    return re.search(rf'<tr data-testid="model-{re.escape(public_id)}">.*?</tr>', page, re.S).group(0)


def test_models_page_lists_what_the_plan_allows_with_prices(on_free, other_tenant):
    alice = signed_in("alice@example.com")
    free_page = alice.get("/t/alice-co/models/").content.decode()
    assert "demo/echo" in model_ids(free_page)
    assert all(public_id.startswith("demo/") for public_id in model_ids(free_page))
    assert "Free" in free_page

    Subscription.objects.filter(tenant=on_free).update(plan=Plan.objects.get(slug="pro"))
    page = alice.get("/t/alice-co/models/").content.decode()
    mini = Model.objects.get(public_id="openai/gpt-4o-mini")
    row = model_row(page, "openai/gpt-4o-mini")
    assert f"${mini.input_price.normalize():f}" in row and f"${mini.output_price.normalize():f}" in row
    assert f"{mini.context_window} tokens" in row
    assert set(model_ids(page)) > set(model_ids(free_page))
    chat_only = model_ids(alice.get("/t/alice-co/models/?capability=chat").content.decode())
    assert chat_only and all(Model.objects.get(public_id=i).capability == "chat" for i in chat_only)

    assert signed_in("charlie@example.com").get("/t/alice-co/models/").status_code == 404


def test_models_page_shows_media_prices_and_features(tenant, other_tenant):
    model = Model.objects.get(public_id="openai/gpt-4o-mini")
    model.features = ["tools", "vision"]
    model.save()
    page = signed_in("alice@example.com").get("/t/alice-co/models/").content.decode()
    row = model_row(page, "openai/gpt-4o-mini")
    assert '<span class="badge">tools</span>' in row and '<span class="badge">vision</span>' in row
    dalle = model_row(page, "openai/dall-e-2")  # Pro allows images of the 'small' group
    assert "$0.016 per image, 256x256" in dalle and "$0.02 per image, 1024x1024" in dalle
    assert "openai/dall-e-2" not in signed_in("charlie@example.com").get("/t/charlie-co/models/?capability=chat"
                                                                          ).content.decode()
    assert signed_in("charlie@example.com").get("/t/alice-co/models/").status_code == 404


def test_billing_page_shows_plan_limits_and_this_months_use(stripe_fake, tenant, other_tenant, api_key):
    month = timezone.now().date().replace(day=1)
    MonthlySpend.objects.create(tenant=tenant, month=month, settled=Decimal("12.5"), reserved=Decimal("0"))
    DailyUsage.objects.create(tenant=tenant, day=timezone.now().date(), model="demo/echo", requests=42,
                              cost=Decimal("12.5"))
    MonthlySpend.objects.create(tenant=other_tenant, month=month, settled=Decimal("77.7"), reserved=Decimal("0"))
    page = signed_in("alice@example.com").get("/t/alice-co/billing/").content.decode()
    assert "Plan: Pro" in page
    assert "42 requests, $12.5000 spent of $250.00" in page
    spend = re.search(r'<li data-testid="allowance-spend-this-month">.*?</li>', page, re.S).group(0)
    assert "12.5000 / 250.00 USD" in spend and 'aria-valuenow="5"' in spend
    keys = re.search(r'<li data-testid="allowance-api-keys-active">.*?</li>', page, re.S).group(0)
    assert "1 / 25" in keys
    assert "77.7" not in page
    assert signed_in("charlie@example.com").get("/t/alice-co/billing/").status_code == 404


def test_upgrade_buttons_post_to_checkout_and_the_portal_and_invoices_follow(stripe_fake, on_free, other_tenant):
    alice = signed_in("alice@example.com")
    page = alice.get("/t/alice-co/billing/").content.decode()
    assert "Upgrade" in page and 'action="/api/billing/checkout"' in page
    form = re.search(r'<form method="post" action="/api/billing/checkout".*?value="pro".*?</form>', page, re.S)
    assert form and 'name="csrfmiddlewaretoken"' in form.group(0) and 'name="tenant" value="alice-co"' in form.group(0)
    assert 'id="no-invoices"' in page and stripe_fake.requests_to("/v1/invoices") == []  # no customer yet

    subscription_id = subscribe(stripe_fake, on_free, "pro")
    deliver(stripe_fake.event("invoice.paid", stripe_fake.invoice(subscription_id, paid=True)))
    page = alice.get("/t/alice-co/billing/").content.decode()
    assert "Plan: Pro" in page and 'id="portal"' in page and "Upgrade" not in page
    customer = Subscription.objects.get(tenant=on_free).stripe_customer_id
    [listing] = stripe_fake.requests_to("/v1/invoices")
    assert listing["method"] == "GET"
    invoices = re.search(r'<table class="table" id="invoices">.*?</table>', page, re.S).group(0)
    assert "TG-0001" in invoices and "99.00 USD" in invoices and ">paid<" in invoices
    assert "https://invoice.stripe.com/i/fake" in invoices
    assert customer

    # Charlie's tenant has its own customer (none yet): no invoices of Alice's reach him.
    charlie_page = signed_in("charlie@example.com").get("/t/charlie-co/billing/").content.decode()
    assert "TG-0001" not in charlie_page

    stripe_fake.unavailable = True
    degraded = alice.get("/t/alice-co/billing/")
    assert degraded.status_code == 200
    assert "Invoices cannot be loaded from Stripe right now" in degraded.content.decode()


def test_billing_page_without_stripe_says_so(catalog, settings, on_free, other_tenant):
    settings.STRIPE_SECRET_KEY = ""
    page = signed_in("alice@example.com").get("/t/alice-co/billing/").content.decode()
    assert "Billing is not configured on this server" in page and "Plan: Free" in page
    assert "Upgrade" not in page and 'id="invoices"' not in page
    assert signed_in("charlie@example.com").get("/t/alice-co/billing/").status_code == 404


def test_past_due_banner_with_the_grace_end_on_billing_and_every_page(stripe_fake, on_free, other_tenant):
    subscription_id = subscribe(stripe_fake, on_free, "pro")
    stripe_fake.update_subscription(subscription_id, status="past_due")
    deliver(stripe_fake.event("invoice.payment_failed", stripe_fake.invoice(subscription_id, paid=False)))
    subscription = Subscription.objects.get(tenant=on_free)
    grace_end = subscription.past_due_since + timezone.timedelta(days=subscription.plan.grace_days)
    alice = signed_in("alice@example.com")
    page = alice.get("/t/alice-co/billing/").content.decode()
    assert "Payment failed." in page and f"Update the card before {grace_end:%Y-%m-%d %H:%M} UTC" in page
    assert 'id="past-due-notice"' in alice.get("/t/alice-co/models/").content.decode()
    assert "Payment failed" not in signed_in("charlie@example.com").get("/t/charlie-co/models/").content.decode()
    assert signed_in("charlie@example.com").get("/t/alice-co/billing/").status_code == 404


def test_roles_on_the_billing_page(stripe_fake, on_free, other_tenant):
    add_member(on_free, "bob@example.com", Role.MEMBER)
    add_member(on_free, "pay@example.com", Role.BILLING)
    add_member(on_free, "adam@example.com", Role.ADMIN)
    payer = signed_in("pay@example.com").get("/t/alice-co/billing/").content.decode()
    assert "Upgrade" in payer
    nav = re.search(r'<nav class="tabs".*?</nav>', payer, re.S).group(0)
    assert ">Billing<" in nav and ">Usage<" in nav and ">API keys<" not in nav and ">Members<" not in nav
    admin = signed_in("adam@example.com").get("/t/alice-co/billing/").content.decode()
    assert "Plan: Free" in admin and "Upgrade" not in admin and "Ask an owner or billing member" in admin
    refused = signed_in("bob@example.com").get("/t/alice-co/billing/")
    assert refused.status_code == 403 and "this page is for owner, admin or billing members" in \
        refused.content.decode()
    assert signed_in("charlie@example.com").get("/t/alice-co/billing/").status_code == 404


def test_old_billing_address_redirects_to_the_tenants_billing_page(stripe_fake, on_free, other_tenant):
    alice = signed_in("alice@example.com")
    assert alice.get("/billing")["Location"] == "/t/alice-co/billing/"
    assert alice.get("/billing?tenant=alice-co&checkout=success")["Location"] == \
        "/t/alice-co/billing/?checkout=success"
    thanks = alice.get("/billing?tenant=alice-co&checkout=success", follow=True).content.decode()
    assert "Thank you: the new plan applies" in thanks
    assert signed_in("charlie@example.com").get("/billing?tenant=alice-co").status_code == 404
    assert signed_in("charlie@example.com").get("/billing")["Location"] == "/t/charlie-co/billing/"
    assert Client().get("/billing")["Location"].startswith("/accounts/login/")
