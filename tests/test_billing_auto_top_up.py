"""Auto top-up: a billing manager saves a card (Checkout, setup mode) and sets a threshold and an
amount; when the balance falls below it the card is charged off-session once per crossing, even
when many processes ask at once; a declined card stops the top-ups and mails the owners, while
Stripe refusing our request (a wrong or restricted key, a bad parameter) leaves them on, tells the
operator and is sent again, with the parameters it was first sent with."""

import io
import logging
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connections

from billing import credits
from billing.models import AutoTopUp, CreditAccount, CreditEntry, CreditEntryKind
from gateway.models import Role
from tests.conftest import add_member
from tests.fakes.stripe_api import SECRET_KEY
from tests.fakes.stripe_payments import MISSING_PARAM, RESTRICTED_KEY
from tests.test_billing_checkout import deliver, signed_in
from tests.test_billing_credit_checkout import buy

HOUR = datetime(2026, 11, 2, 10, tzinfo=UTC)


def save_card(fake, tenant, *, declines: bool = False, email: str = "alice@example.com"):
    answer = signed_in(email).post("/api/billing/credits/card", {"tenant": tenant.slug},
                                   content_type="application/json")
    assert answer.status_code == 200, answer.content
    assert deliver(fake.save_card(answer.json()["url"].rsplit("/", 1)[1], declines=declines)).status_code == 200


def set_auto_top_up(tenant, *, email: str = "alice@example.com", **form):
    return signed_in(email).post(f"/t/{tenant.slug}/billing/auto-top-up/", form, follow=True)


class Spender:
    """Settlement's side: debits usage in successive periods, as the settlement will."""

    def __init__(self, tenant):
        self.tenant, self.next_start = tenant, HOUR

    def spend(self, amount: str) -> None:
        end = self.next_start + timedelta(minutes=1)
        credits.debit_usage(self.tenant.pk, Decimal(amount), period_start=self.next_start, period_end=end)
        self.next_start = end


def prepaid_with_auto_top_up(fake, tenant, *, declines: bool = False) -> Spender:
    """Alice's tenant: $10 bought, a card saved, auto top-up below $5 by $20."""
    buy(fake, tenant, "10")
    save_card(fake, tenant, declines=declines)
    page = set_auto_top_up(tenant, enabled="on", threshold="5", amount="20")
    assert "Auto top-up is on" in page.content.decode()
    return Spender(tenant)


def top_up_entries(tenant) -> list[Decimal]:
    return [e.amount for e in CreditEntry.objects.filter(tenant=tenant, kind=CreditEntryKind.TOP_UP)]


def test_billing_manager_saves_a_card_and_sets_auto_top_up(stripe_fake, on_free, other_tenant):
    add_member(on_free, "bob@example.com", Role.MEMBER)
    add_member(on_free, "ada@example.com", Role.ADMIN)
    buy(stripe_fake, on_free, "10")
    refused = set_auto_top_up(on_free, enabled="on", threshold="5", amount="20")
    assert "Save a card for auto top-up first" in refused.content.decode()

    save_card(stripe_fake, on_free)
    [setup_call] = [r for r in stripe_fake.requests_to("/v1/checkout/sessions") if r["form"]["mode"] == "setup"]
    assert setup_call["form"]["payment_method_types"] == ["card"]
    assert setup_call["form"]["success_url"].endswith("/billing?tenant=alice-co&card=saved")
    account = CreditAccount.objects.get(tenant=on_free)
    assert account.card_label == "visa •••• 4242" and account.stripe_payment_method_id.startswith("pm_")

    for threshold, amount, says in [("30", "20", "at most the top-up amount"), ("0", "20", "above $0"),
                                    ("5", "7", "Choose one of"), ("5.001", "20", "whole cents")]:
        page = set_auto_top_up(on_free, enabled="on", threshold=threshold, amount=amount).content.decode()
        assert says in page
    assert not CreditAccount.objects.get(tenant=on_free).auto_top_up

    assert set_auto_top_up(on_free, email="bob@example.com", enabled="on", threshold="5",
                           amount="20").status_code == 403
    assert set_auto_top_up(on_free, email="ada@example.com", enabled="on", threshold="5",
                           amount="20").status_code == 403
    assert set_auto_top_up(on_free, email="charlie@example.com", enabled="on", threshold="5",
                           amount="20").status_code == 404
    assert signed_in("charlie@example.com").post("/api/billing/credits/card", {"tenant": "alice-co"},
                                                 content_type="application/json").status_code == 404

    page = set_auto_top_up(on_free, enabled="on", threshold="5", amount="20").content.decode()
    assert "below $5.00, visa •••• 4242 is charged $20.00" in page
    assert 'Card: visa •••• 4242' in page
    assert stripe_fake.payment_intents_created() == []  # $10 is above the threshold
    assert not CreditAccount.objects.filter(tenant=other_tenant).exists()


def test_one_charge_per_crossing_even_when_asked_concurrently(stripe_fake, on_free, other_tenant):
    spender = prepaid_with_auto_top_up(stripe_fake, on_free)
    spender.spend("6")  # $4 left: below $5
    start = threading.Barrier(8)
    attempts = []

    def ask():
        try:
            start.wait()
            attempts.append(credits.top_up_if_low(on_free.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    [attempt] = [a for a in attempts if a is not None]
    assert attempt.status == "succeeded" and len(attempts) == 8
    [charge_call] = stripe_fake.payment_intents_created()
    assert charge_call["form"]["off_session"] == "true" and charge_call["form"]["amount"] == "2000"
    assert charge_call["headers"]["Idempotency-Key"] == attempt.idempotency_key
    assert top_up_entries(on_free) == [Decimal("20")]
    assert credits.balance(on_free.pk) == credits.ledger_balance(on_free.pk) == Decimal("24")
    entry = CreditEntry.objects.get(tenant=on_free, kind=CreditEntryKind.TOP_UP)
    assert entry.receipt_url.startswith("https://pay.stripe.com/receipts/")
    # Stripe's own event about the same charge credits nothing more.
    assert deliver(stripe_fake.payment_intent_event(entry.stripe_payment_intent_id)).status_code == 200
    assert top_up_entries(on_free) == [Decimal("20")]

    assert credits.top_up_if_low(on_free.pk) is None  # $24: nothing due
    spender.spend("20")  # $4 again: a new crossing
    assert credits.top_up_if_low(on_free.pk).status == "succeeded"
    assert top_up_entries(on_free) == [Decimal("20"), Decimal("20")]
    assert credits.balance(on_free.pk) == credits.ledger_balance(on_free.pk) == Decimal("24")
    assert "Auto top-up" in signed_in("alice@example.com").get("/t/alice-co/billing/").content.decode()
    assert not CreditEntry.objects.filter(tenant=other_tenant).exists()


def test_still_below_after_a_top_up_is_the_same_crossing(stripe_fake, on_free):
    spender = prepaid_with_auto_top_up(stripe_fake, on_free)
    spender.spend("35")  # -$25: a $20 top-up leaves -$5, still below $5
    assert credits.top_up_if_low(on_free.pk).status == "succeeded"
    assert credits.balance(on_free.pk) == Decimal("-5")
    assert credits.top_up_if_low(on_free.pk) is None
    assert len(stripe_fake.payment_intents_created()) == 1
    buy(stripe_fake, on_free, "20")  # back to $15: the crossing is over
    spender.spend("11")
    assert credits.top_up_if_low(on_free.pk).status == "succeeded"
    assert len(stripe_fake.payment_intents_created()) == 2


def test_a_declined_card_stops_auto_top_up_and_mails_the_owners(stripe_fake, on_free, other_tenant):
    add_member(on_free, "bob@example.com", Role.MEMBER)
    add_member(on_free, "pay@example.com", Role.BILLING)
    spender = prepaid_with_auto_top_up(stripe_fake, on_free, declines=True)
    spender.spend("6")
    attempt = credits.top_up_if_low(on_free.pk)
    assert attempt.status == "declined" and "insufficient funds" in attempt.failure
    account = CreditAccount.objects.get(tenant=on_free)
    assert not account.auto_top_up and "insufficient funds" in account.top_up_stopped_reason
    assert credits.balance(on_free.pk) == Decimal("4") and top_up_entries(on_free) == []

    [message] = mail.outbox
    assert sorted(message.to) == ["alice@example.com", "pay@example.com"]
    assert "Auto top-up stopped" in message.subject and "/t/alice-co/billing/" in message.body
    assert "insufficient funds" in message.body

    # Stripe's payment_failed event, and another ask: no second charge, no second mail.
    assert deliver(stripe_fake.payment_intent_event(attempt.stripe_payment_intent_id)).status_code == 200
    assert credits.top_up_if_low(on_free.pk) is None
    assert len(stripe_fake.payment_intents_created()) == 1 and len(mail.outbox) == 1
    page = signed_in("alice@example.com").get("/t/alice-co/billing/").content.decode()
    assert 'id="top-up-stopped"' in page
    assert 'id="top-up-stopped"' not in signed_in("charlie@example.com").get("/t/charlie-co/billing/").content.decode()

    # A card that works, auto top-up on again: the crossing is charged now.
    save_card(stripe_fake, on_free)
    set_auto_top_up(on_free, enabled="on", threshold="5", amount="20")
    assert credits.balance(on_free.pk) == Decimal("24")
    assert AutoTopUp.objects.filter(tenant=on_free).count() == 2


def test_a_lost_answer_is_sent_again_with_its_key_and_charged_once(stripe_fake, on_free, other_tenant):
    spender = prepaid_with_auto_top_up(stripe_fake, on_free)
    spender.spend("6")
    stripe_fake.lose_payment_answers = 1  # Stripe charges, the answer never reaches us
    attempt = credits.top_up_if_low(on_free.pk)
    assert attempt.status == "pending" and credits.balance(on_free.pk) == Decimal("4")
    assert credits.top_up_if_low(on_free.pk) is None  # the crossing is taken

    out = io.StringIO()
    AutoTopUp.objects.filter(pk=attempt.pk).update(updated_at=attempt.updated_at - timedelta(minutes=5))
    call_command("top_up_credits", stdout=out)
    assert "resent 1" in out.getvalue()
    first, second = stripe_fake.payment_intents_created()
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]
    top_ups = [i for i in stripe_fake.payment_intents.values() if i["metadata"].get("purpose") == "top_up"]
    assert len(top_ups) == 1  # one PaymentIntent: one charge
    assert AutoTopUp.objects.get(pk=attempt.pk).status == "succeeded"
    assert top_up_entries(on_free) == [Decimal("20")]
    assert credits.balance(on_free.pk) == credits.ledger_balance(on_free.pk) == Decimal("24")
    assert credits.balance(other_tenant.pk) == 0


def test_the_periodic_job_tops_up_every_low_balance(stripe_fake, on_free, other_tenant):
    spender = prepaid_with_auto_top_up(stripe_fake, on_free)
    spender.spend("9")
    out = io.StringIO()
    call_command("top_up_credits", stdout=out)
    assert f"tenant {on_free.pk}: top-up of $20.00 succeeded" in out.getvalue()
    call_command("top_up_credits", stdout=io.StringIO())
    assert top_up_entries(on_free) == [Decimal("20")]
    assert credits.balance(on_free.pk) == Decimal("21")


def resend_due(attempt) -> str:
    """The periodic job, once the attempt is old enough to be sent again."""
    AutoTopUp.objects.filter(pk=attempt.pk).update(updated_at=attempt.updated_at - timedelta(minutes=5))
    out = io.StringIO()
    call_command("top_up_credits", stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("refusal", ["wrong secret key", "restricted key", "invalid request"])
def test_stripe_refusing_our_request_keeps_auto_top_up_on_and_is_resent_once_fixed(
        stripe_fake, on_free, other_tenant, settings, caplog, refusal):
    spender = prepaid_with_auto_top_up(stripe_fake, on_free)
    spender.spend("6")
    if refusal == "wrong secret key":
        settings.STRIPE_SECRET_KEY = "sk_test_not_this_accounts"  # a 401
    else:
        stripe_fake.payment_errors = [RESTRICTED_KEY if refusal == "restricted key" else MISSING_PARAM]
    with caplog.at_level(logging.ERROR, logger="billing.credits"):
        attempt = credits.top_up_if_low(on_free.pk)
    assert attempt.status == "pending" and attempt.failure.startswith("Stripe refused the request")
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert attempt.idempotency_key in logged.getMessage() and "check the Stripe settings" in logged.getMessage()
    account = CreditAccount.objects.get(tenant=on_free)
    assert account.auto_top_up and account.top_up_stopped_reason == "" and account.top_up_stopped_at is None
    assert mail.outbox == [] and top_up_entries(on_free) == []
    assert 'id="top-up-stopped"' not in signed_in("alice@example.com").get("/t/alice-co/billing/").content.decode()

    settings.STRIPE_SECRET_KEY = SECRET_KEY  # the operator fixes it
    assert "resent 1" in resend_due(attempt)
    assert AutoTopUp.objects.get(pk=attempt.pk).status == "succeeded"
    assert top_up_entries(on_free) == [Decimal("20")] and mail.outbox == []
    assert credits.balance(on_free.pk) == credits.ledger_balance(on_free.pk) == Decimal("24")
    assert credits.balance(other_tenant.pk) == 0 and not AutoTopUp.objects.filter(tenant=other_tenant).exists()


def test_a_resend_after_a_new_card_is_saved_charges_the_card_first_sent_once(stripe_fake, on_free, other_tenant):
    spender = prepaid_with_auto_top_up(stripe_fake, on_free)
    first_card = CreditAccount.objects.get(tenant=on_free).stripe_payment_method_id
    spender.spend("6")
    stripe_fake.lose_payment_answers = 1  # Stripe charges the first card; the answer never reaches us
    attempt = credits.top_up_if_low(on_free.pk)
    assert attempt.status == "pending"
    save_card(stripe_fake, on_free)  # meanwhile, a billing manager saves another card
    assert CreditAccount.objects.get(tenant=on_free).stripe_payment_method_id != first_card

    assert "resent 1" in resend_due(attempt)
    first, second = stripe_fake.payment_intents_created()
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]
    assert first["form"] == second["form"] and second["form"]["payment_method"] == first_card
    top_ups = [i for i in stripe_fake.payment_intents.values() if i["metadata"].get("purpose") == "top_up"]
    assert len(top_ups) == 1  # one PaymentIntent: one charge
    assert AutoTopUp.objects.get(pk=attempt.pk).status == "succeeded" and mail.outbox == []
    assert CreditAccount.objects.get(tenant=on_free).auto_top_up
    assert top_up_entries(on_free) == [Decimal("20")] and credits.balance(on_free.pk) == Decimal("24")
    assert credits.balance(other_tenant.pk) == 0
