"""A tenant buys credits through Stripe Checkout (payment mode); the webhook credits them exactly
once, however often and in whatever order Stripe's events arrive, and the billing page lists
every entry with its receipt. stripe-python talks to the fake Stripe API."""

from decimal import Decimal

from django.test import Client

from billing import credits
from billing.models import CreditEntry, CreditEntryKind, Plan, PlanChange, Subscription
from billing.stripe_api import API_VERSION
from gateway.models import Role
from tests.conftest import add_member
from tests.test_billing_checkout import deliver, signed_in


def start_purchase(browser: Client, tenant_slug: str, amount: str = "20"):
    return browser.post("/api/billing/credits/checkout", {"tenant": tenant_slug, "amount": amount},
                        content_type="application/json")


def paid_purchase(fake, tenant, amount: str = "20", *, email: str = "alice@example.com") -> dict:
    """Credits bought and paid at Stripe: checkout.session.completed, not yet delivered."""
    answer = start_purchase(signed_in(email), tenant.slug, amount)
    assert answer.status_code == 200, answer.content
    return fake.pay_checkout(answer.json()["url"].rsplit("/", 1)[1])


def buy(fake, tenant, amount: str = "20", **who) -> str:
    """Buy credits and deliver the webhook: the PaymentIntent's id."""
    completed = paid_purchase(fake, tenant, amount, **who)
    assert deliver(completed).status_code == 200
    return fake.sessions[completed["data"]["object"]["id"]]["payment_intent"]


def billing_page(email: str = "alice@example.com", slug: str = "alice-co"):
    return signed_in(email).get(f"/t/{slug}/billing/")


def test_free_tenant_buys_credits_once_and_moves_to_pay_as_you_go(stripe_fake, on_free, other_tenant):
    answer = start_purchase(signed_in("alice@example.com"), "alice-co", "20")
    assert answer.status_code == 200 and answer.json()["url"].startswith("https://checkout.stripe.com/c/pay/")
    [session_call] = stripe_fake.requests_to("/v1/checkout/sessions")
    form = session_call["form"]
    assert session_call["headers"]["Stripe-Version"] == API_VERSION
    assert form["mode"] == "payment" and form["customer"] == next(iter(stripe_fake.customers))
    assert form["line_items"] == [{"quantity": "1", "price_data": {
        "currency": "usd", "unit_amount": "2000", "product_data": {"name": "Tollgate credits"}}}]
    assert form["payment_intent_data"]["metadata"] == {"tenant_id": str(on_free.pk), "purpose": "credits"}
    assert form["success_url"].endswith("/billing?tenant=alice-co&credits=success")
    assert credits.balance(on_free.pk) == 0  # nothing paid yet

    completed = stripe_fake.pay_checkout(answer.json()["url"].rsplit("/", 1)[1])
    payment_intent_id = stripe_fake.sessions[completed["data"]["object"]["id"]]["payment_intent"]
    assert deliver(completed).status_code == 200
    assert deliver(completed).json()["duplicate"] is True
    assert deliver(stripe_fake.payment_intent_event(payment_intent_id)).status_code == 200  # the other event

    [entry] = CreditEntry.objects.filter(tenant=on_free)
    assert (entry.kind, entry.amount, entry.stripe_payment_intent_id) == ("purchase", Decimal("20"), payment_intent_id)
    assert entry.receipt_url.startswith("https://pay.stripe.com/receipts/")
    assert credits.balance(on_free.pk) == credits.ledger_balance(on_free.pk) == Decimal("20")
    assert Subscription.objects.get(tenant=on_free).plan.slug == "payg"
    [change] = PlanChange.objects.filter(tenant=on_free)
    assert (change.from_plan.slug, change.to_plan.slug, change.reason) == ("free", "payg", "credits")

    page = billing_page().content.decode()
    assert "Balance: <strong>$20.00</strong>" in page and entry.receipt_url in page
    assert "requests stop at $0" in page
    assert not CreditEntry.objects.filter(tenant=other_tenant).exists()
    assert Subscription.objects.get(tenant=other_tenant).plan.slug == "pro"


def test_payment_intent_event_first_then_checkout_credits_once(stripe_fake, on_free, other_tenant):
    completed = paid_purchase(stripe_fake, on_free, "50")
    payment_intent_id = stripe_fake.sessions[completed["data"]["object"]["id"]]["payment_intent"]
    assert deliver(stripe_fake.payment_intent_event(payment_intent_id)).status_code == 200
    assert deliver(completed).status_code == 200
    assert credits.balance(on_free.pk) == Decimal("50")
    assert CreditEntry.objects.filter(tenant=on_free, kind=CreditEntryKind.PURCHASE).count() == 1
    assert credits.balance(other_tenant.pk) == 0


def test_an_unpaid_session_credits_nothing(stripe_fake, on_free):
    answer = start_purchase(signed_in("alice@example.com"), "alice-co", "10")
    session_id = answer.json()["url"].rsplit("/", 1)[1]
    unpaid = stripe_fake.event("checkout.session.completed", stripe_fake.public_session(
        stripe_fake.sessions[session_id]))
    assert deliver(unpaid).status_code == 200
    assert credits.balance(on_free.pk) == 0
    assert Subscription.objects.get(tenant=on_free).plan.slug == "free"


def test_only_billing_managers_buy_and_only_amounts_on_sale(stripe_fake, on_free, other_tenant):
    add_member(on_free, "bob@example.com", Role.MEMBER)
    add_member(on_free, "ada@example.com", Role.ADMIN)
    add_member(on_free, "pay@example.com", Role.BILLING)
    assert start_purchase(Client(), "alice-co").status_code == 401
    assert start_purchase(signed_in("bob@example.com"), "alice-co").status_code == 403
    assert start_purchase(signed_in("ada@example.com"), "alice-co").status_code == 403
    # Charlie owns his own tenant, not Alice's: for him it does not exist.
    assert start_purchase(signed_in("charlie@example.com"), "alice-co").status_code == 404
    assert billing_page("charlie@example.com").status_code == 404
    assert billing_page("bob@example.com").status_code == 403
    assert 'id="buy-credits"' not in billing_page("ada@example.com").content.decode()
    for amount, says in [("7", "Choose one of $10, $20, $50, $100"), ("twenty", "not an amount"),
                         ("", "not an amount"), ("NaN", "not an amount")]:
        refused = start_purchase(signed_in("pay@example.com"), "alice-co", amount)
        assert refused.status_code == 400 and says in refused.json()["error"]["message"]
    # Charlie's Pro plan sells no credits.
    assert start_purchase(signed_in("charlie@example.com"), "charlie-co").status_code == 409
    assert stripe_fake.requests == []

    assert 'id="buy-credits"' in billing_page("pay@example.com").content.decode()
    assert start_purchase(signed_in("pay@example.com"), "alice-co", "100").status_code == 200
    assert start_purchase(signed_in("pay@example.com"), "alice-co", "$10.00").status_code == 200


def test_a_payment_never_credits_a_tenant_whose_customer_did_not_pay(stripe_fake, on_free, other_tenant):
    Subscription.objects.filter(tenant=other_tenant).update(plan=Plan.objects.get(slug="free"))
    completed = paid_purchase(stripe_fake, other_tenant, "20", email="charlie@example.com")
    session = stripe_fake.sessions[completed["data"]["object"]["id"]]
    # Metadata naming Alice's tenant on a payment by Charlie's customer.
    session["metadata"]["tenant_id"] = str(on_free.pk)
    stripe_fake.payment_intents[session["payment_intent"]]["metadata"]["tenant_id"] = str(on_free.pk)
    assert deliver(completed).status_code == 200
    assert deliver(stripe_fake.payment_intent_event(session["payment_intent"])).status_code == 200
    assert credits.balance(on_free.pk) == 0 and credits.balance(other_tenant.pk) == 0
    assert not CreditEntry.objects.exists()
    forged = Client().post("/billing/stripe/webhook", b"{}", content_type="application/json",
                           headers={"Stripe-Signature": "t=1,v1=00"})
    assert forged.status_code == 400


def test_a_refund_in_stripe_takes_its_credits_back_once(stripe_fake, on_free, other_tenant):
    payment_intent_id = buy(stripe_fake, on_free, "20")
    refunded = stripe_fake.refund(payment_intent_id, 500)
    assert deliver(refunded).status_code == 200
    assert deliver(refunded).json()["duplicate"] is True
    again = stripe_fake.event("charge.refunded", refunded["data"]["object"])  # a new event, same refund
    assert deliver(again).status_code == 200
    assert credits.balance(on_free.pk) == credits.ledger_balance(on_free.pk) == Decimal("15")
    assert deliver(stripe_fake.refund(payment_intent_id)).status_code == 200
    assert credits.balance(on_free.pk) == Decimal("0")
    assert [e.amount for e in CreditEntry.objects.filter(tenant=on_free, kind=CreditEntryKind.REFUND)] == [
        Decimal("-15"), Decimal("-5")]
    assert "Refunded in Stripe" in billing_page().content.decode()
    assert not CreditEntry.objects.filter(tenant=other_tenant).exists()


def test_a_refund_delivered_before_its_purchase_takes_the_credits_back_once(stripe_fake, on_free, other_tenant):
    completed = paid_purchase(stripe_fake, on_free, "20")  # paid, its events still on their way
    payment_intent_id = stripe_fake.sessions[completed["data"]["object"]["id"]]["payment_intent"]
    refunded = stripe_fake.refund(payment_intent_id, 500)
    assert deliver(refunded).status_code == 200  # the refund's event comes first
    assert credits.balance(on_free.pk) == credits.ledger_balance(on_free.pk) == Decimal("15")
    assert deliver(completed).status_code == 200
    assert deliver(stripe_fake.payment_intent_event(payment_intent_id)).status_code == 200
    assert deliver(stripe_fake.event("charge.refunded", refunded["data"]["object"])).status_code == 200
    assert credits.balance(on_free.pk) == credits.ledger_balance(on_free.pk) == Decimal("15")
    assert [(e.kind, e.amount) for e in CreditEntry.objects.filter(tenant=on_free).order_by("id")] == [
        ("purchase", Decimal("20")), ("refund", Decimal("-5"))]
    assert Subscription.objects.get(tenant=on_free).plan.slug == "payg"
    assert not CreditEntry.objects.filter(tenant=other_tenant).exists()


def test_a_pending_refund_takes_the_credits_back_when_it_succeeds(stripe_fake, on_free, other_tenant):
    payment_intent_id = buy(stripe_fake, on_free, "20")
    assert deliver(stripe_fake.refund(payment_intent_id, 500, status="pending")).status_code == 200
    assert credits.balance(on_free.pk) == Decimal("20")  # not refunded yet
    [refund] = stripe_fake.refunds
    succeeded = stripe_fake.settle_refund(refund["id"])
    assert deliver(succeeded).status_code == 200
    assert deliver(succeeded).json()["duplicate"] is True
    assert deliver(stripe_fake.event("charge.refund.updated", succeeded["data"]["object"])).status_code == 200
    assert credits.balance(on_free.pk) == credits.ledger_balance(on_free.pk) == Decimal("15")
    [entry] = CreditEntry.objects.filter(tenant=on_free, kind=CreditEntryKind.REFUND)
    assert (entry.amount, entry.stripe_refund_id) == (Decimal("-5"), refund["id"])
    assert not CreditEntry.objects.filter(tenant=other_tenant).exists()
