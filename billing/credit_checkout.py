"""Buying credits and the card auto top-up charges: the tenant's way in through Stripe Checkout,
and what Stripe's webhooks confirm.

    credit_plan_for(subscription)            the plan whose credit amounts the tenant may buy
    start_credit_checkout(tenant, amount)    Checkout in payment mode, for an amount the operator set
    start_card_setup(tenant)                 Checkout in setup mode: the card auto top-up charges
    set_auto_top_up(tenant, ...)             on or off, threshold and amount (a billing manager)
    apply_checkout(session_id)               webhook: credit a paid session, or keep a saved card
    apply_payment(payment_intent_id)         webhook: credit a purchase or top-up; a declined top-up
    apply_refunds(payment_intent_id)         webhook: a refund made in Stripe takes its credits back
                                             (crediting the payment first if that event is still to come)

No webhook is trusted for money: each applier re-reads the session or PaymentIntent from Stripe
and finds the tenant by its Stripe customer; the ledger's unique Stripe ids make a duplicate
(or the other event about the same payment, in either order) a no-op.
"""

import logging
from decimal import Decimal, InvalidOperation

from django.db import transaction

from billing import credits, stripe_payments
from billing.models import (
    AutoTopUp,
    CreditAccount,
    CreditEntry,
    CreditEntryKind,
    Plan,
    PlanChangeReason,
    Subscription,
    TopUpStatus,
)
from billing.stripe_api import StripeObjectMissing
from billing.stripe_payments import RemotePayment, SavedCard
from billing.subscriptions import (
    FREE_PLAN_SLUG,
    CheckoutRefused,
    Redirect,
    billing_page_url,
    change_plan,
    ensure_customer,
    lock_subscription,
)

log = logging.getLogger(__name__)


class InvalidAmount(ValueError):
    """An amount or threshold the tenant may not choose (the message says which it may)."""


def prepaid_plan() -> Plan | None:
    """The pay-as-you-go plan: the first prepaid plan that sells credits."""
    return next((plan for plan in Plan.objects.filter(prepaid=True) if plan.credit_amounts), None)


def credit_plan_for(subscription: Subscription) -> Plan | None:
    """The tenant's own plan when it sells credits; on Free (no Stripe subscription), the
    pay-as-you-go plan, which the tenant's first paid purchase moves it to; else None."""
    if subscription.plan.credit_amounts:
        return subscription.plan
    if subscription.plan.slug == FREE_PLAN_SLUG and not subscription.stripe_subscription_id:
        return prepaid_plan()
    return None


def amounts_of(plan: Plan | None) -> list[Decimal]:
    return sorted(Decimal(str(amount)) for amount in plan.credit_amounts) if plan else []


def parse_amount(value) -> Decimal:
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation as exc:
        raise InvalidAmount(f"'{value}' is not an amount in USD, such as 20 or 20.00.") from exc
    if not amount.is_finite():
        raise InvalidAmount(f"'{value}' is not an amount in USD, such as 20 or 20.00.")
    return amount


def offered_amount(subscription: Subscription, value) -> Decimal:
    amounts = amounts_of(credit_plan_for(subscription))
    if not amounts:
        raise CheckoutRefused(f"Plan {subscription.plan.name} has no credits to buy; change the plan first.")
    amount = parse_amount(value)
    if amount not in amounts:
        raise InvalidAmount(f"Choose one of ${', $'.join(str(a) for a in amounts)}.")
    return amount


def start_credit_checkout(tenant, amount, *, email: str, base_url: str) -> Redirect:
    """Stripe Checkout (payment mode) for ``amount`` USD of credits; the webhook credits them."""
    subscription = Subscription.objects.select_related("plan").get(tenant=tenant)
    amount = offered_amount(subscription, amount)
    customer_id = ensure_customer(tenant, email=email)
    session = stripe_payments.create_credit_checkout_session(
        customer_id=customer_id, tenant_id=tenant.pk, amount=amount,
        success_url=billing_page_url(base_url, tenant.slug, credits="success"),
        cancel_url=billing_page_url(base_url, tenant.slug, credits="canceled"))
    return Redirect(session.url)


def start_card_setup(tenant, *, email: str, base_url: str) -> Redirect:
    """Stripe Checkout (setup mode): the card auto top-up charges, saved once the webhook comes."""
    subscription = Subscription.objects.select_related("plan").get(tenant=tenant)
    if credit_plan_for(subscription) is None:
        raise CheckoutRefused(f"Plan {subscription.plan.name} has no credits to top up.")
    customer_id = ensure_customer(tenant, email=email)
    session = stripe_payments.create_card_setup_session(
        customer_id=customer_id, tenant_id=tenant.pk,
        success_url=billing_page_url(base_url, tenant.slug, card="saved"),
        cancel_url=billing_page_url(base_url, tenant.slug, card="canceled"))
    return Redirect(session.url)


@transaction.atomic
def set_auto_top_up(tenant, *, enabled: bool, threshold=None, amount=None) -> CreditAccount:
    """Turn auto top-up on (below ``threshold`` USD, charge ``amount``, one of the amounts on
    sale, at least the threshold so one charge lifts the balance back) or off."""
    account = credits.lock_account(tenant.pk)
    if not enabled:
        CreditAccount.objects.filter(pk=account.pk).update(auto_top_up=False)
        account.refresh_from_db()
        return account
    subscription = Subscription.objects.select_related("plan").get(tenant=tenant)
    amount = offered_amount(subscription, amount)
    threshold = parse_amount(threshold)
    if not Decimal(0) < threshold <= amount or threshold != threshold.quantize(Decimal("0.01")):
        raise InvalidAmount(f"The threshold must be above $0 and at most the top-up amount (${amount}), "
                            f"in whole cents.")
    if not account.stripe_payment_method_id:
        raise CheckoutRefused("Save a card for auto top-up first.")
    # Armed afresh (a declined crossing is charged again, with the new card), unless a charge is
    # still on its way: that one covers the crossing.
    in_flight = AutoTopUp.objects.filter(tenant=tenant, status=TopUpStatus.PENDING).exists()
    CreditAccount.objects.filter(pk=account.pk).update(
        auto_top_up=True, top_up_threshold=threshold, top_up_amount=amount, top_up_armed=not in_flight,
        top_up_stopped_reason="", top_up_stopped_at=None)
    account.refresh_from_db()
    return account


# --- what the webhooks confirm (inside the webhook's transaction) --------------------------------

def tenant_of(customer_id: str, metadata: dict) -> int | None:
    """The tenant a payment is for: the one our metadata names, and only if the payment's Stripe
    customer is that tenant's (so no payment can credit another tenant)."""
    tenant_id = str(metadata.get("tenant_id") or "")
    if not tenant_id.isdigit() or not customer_id:
        return None
    if not Subscription.objects.filter(tenant_id=int(tenant_id), stripe_customer_id=customer_id).exists():
        log.warning("a payment of customer %s names tenant %s, whose customer it is not; ignored", customer_id,
                    tenant_id)
        return None
    return int(tenant_id)


def credit_purchase(tenant_id: int, payment: RemotePayment, *, checkout_session_id: str = "",
                    stripe_event_id: str = "") -> CreditEntry | None:
    entry = credits.credit_payment(tenant_id, payment, kind=CreditEntryKind.PURCHASE, reason="Credits bought",
                                   checkout_session_id=checkout_session_id)
    if entry is not None:
        move_to_prepaid_plan(tenant_id, stripe_event_id=stripe_event_id)
    return entry


def move_to_prepaid_plan(tenant_id: int, *, stripe_event_id: str = "") -> None:
    """A tenant on Free that buys credits is on pay as you go from then on."""
    subscription = lock_subscription(tenant_id)
    plan = prepaid_plan()
    if plan is None or subscription.plan.slug != FREE_PLAN_SLUG or subscription.stripe_subscription_id:
        return
    change_plan(subscription, plan, reason=PlanChangeReason.CREDITS, stripe_event_id=stripe_event_id,
                detail="first credits bought")


def save_card(tenant_id: int, card: SavedCard) -> None:
    with transaction.atomic():
        account = credits.lock_account(tenant_id)
        CreditAccount.objects.filter(pk=account.pk).update(stripe_payment_method_id=card.payment_method_id,
                                                           card_label=card.label[:60])
    log.info("tenant %s: card %s saved for auto top-up", tenant_id, card.payment_method_id)


def apply_checkout(session_id: str, *, stripe_event_id: str = "") -> None:
    """checkout.session.completed / .async_payment_succeeded of a credits or card session."""
    try:
        remote = stripe_payments.retrieve_checkout(session_id)
    except StripeObjectMissing:
        log.warning("event %s: Stripe has no checkout session %s; ignored", stripe_event_id, session_id)
        return
    tenant_id = tenant_of(remote.customer_id, remote.metadata)
    if tenant_id is None:
        return
    if remote.mode == "payment" and remote.payment is not None and remote.payment_status == "paid":
        credit_purchase(tenant_id, remote.payment, checkout_session_id=remote.id, stripe_event_id=stripe_event_id)
    elif remote.mode == "setup" and remote.card is not None:
        save_card(tenant_id, remote.card)


def apply_payment(payment_intent_id: str, *, stripe_event_id: str = "") -> None:
    """payment_intent.succeeded / .payment_failed of a credits purchase or an auto top-up."""
    try:
        payment = stripe_payments.retrieve_payment(payment_intent_id)
    except StripeObjectMissing:
        log.warning("event %s: Stripe has no PaymentIntent %s; ignored", stripe_event_id, payment_intent_id)
        return
    tenant_id = tenant_of(payment.customer_id, payment.metadata)
    if tenant_id is None:
        return
    purpose = payment.metadata.get("purpose")
    if purpose == "credits" and payment.status == "succeeded":
        credit_purchase(tenant_id, payment, stripe_event_id=stripe_event_id)
    elif purpose == "top_up":
        attempt = AutoTopUp.objects.filter(tenant_id=tenant_id, crossing=credits.crossing_of(payment)).first()
        if attempt is None:
            log.warning("event %s: top-up %s matches no attempt of tenant %s", stripe_event_id, payment.id, tenant_id)
            return
        credits.settle_top_up(attempt, payment)


def apply_refunds(payment_intent_id: str, *, stripe_event_id: str = "") -> None:
    """charge.refunded and a refund's update: every succeeded refund of a payment that bought
    credits, once each. The payment is credited first if no event has done it yet (Stripe may
    deliver the refund before the purchase), so what it bought is taken back in either order; a
    refund still pending is taken back by the event of its update."""
    apply_payment(payment_intent_id, stripe_event_id=stripe_event_id)
    tenant_id = (CreditEntry.objects.filter(stripe_payment_intent_id=payment_intent_id,
                                            kind__in=[CreditEntryKind.PURCHASE, CreditEntryKind.TOP_UP])
                 .values_list("tenant_id", flat=True).first())
    if tenant_id is None:
        return  # not a payment for credits (a subscription invoice, say)
    for refund in stripe_payments.list_refunds(payment_intent_id):
        credits.record_refund(tenant_id, refund)
