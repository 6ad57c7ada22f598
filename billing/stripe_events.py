"""One handler per Stripe event type we act on (HANDLERS is the allowlist): subscriptions here,
credits in billing/credit_checkout.py (the same rules: re-read from Stripe, idempotent).

Each runs inside the webhook's transaction, after the event's StripeEvent row is inserted.
None trusts the event's copy of a subscription: events arrive late, twice and out of order,
so each finds the tenant, locks its subscription row, re-fetches the subscription from Stripe
and lets billing.subscriptions.apply_stripe_subscription() make ours match it. A handler must
not call Stripe for anything but reading, and must not catch our errors: a failure rolls the
StripeEvent row back and Stripe delivers the event again.
"""

import logging

from billing import credit_checkout, stripe_api
from billing.models import Subscription
from billing.stripe_api import StripeObjectMissing, WebhookEvent, id_of
from billing.subscriptions import apply_stripe_subscription, lock_subscription

log = logging.getLogger(__name__)


def find_tenant_id(*, subscription_id: str = "", customer_id: str = "") -> int | None:
    if subscription_id:
        found = Subscription.objects.filter(stripe_subscription_id=subscription_id).values_list("tenant_id", flat=True)
        if found:
            return found[0]
    if customer_id:
        found = Subscription.objects.filter(stripe_customer_id=customer_id).values_list("tenant_id", flat=True)
        if found:
            return found[0]
    return None


def sync_subscription(event: WebhookEvent, subscription_id: str, *, tenant_id: int | None = None,
                      customer_id: str = "") -> None:
    """Lock the tenant's row, then read Stripe: two events handled at once apply in the order
    they read, so the later read wins. (On SQLite the transaction holds the database's write
    lock for the round trip; webhooks are rare enough for that.)"""
    tenant_id = tenant_id or find_tenant_id(subscription_id=subscription_id, customer_id=customer_id)
    if tenant_id is not None:
        lock_subscription(tenant_id)
    try:
        remote = stripe_api.retrieve_subscription(subscription_id)
    except StripeObjectMissing:
        log.warning("event %s: Stripe has no subscription %s (another account or mode?); ignored", event.id,
                    subscription_id)
        return
    if tenant_id is None and remote.tenant_id.isdigit():
        # A subscription our Checkout made, before any event linked it to its tenant.
        tenant_id = int(remote.tenant_id) if Subscription.objects.filter(tenant_id=remote.tenant_id).exists() else None
    if tenant_id is None:
        log.warning("event %s: subscription %s (customer %s) belongs to no tenant; ignored", event.id,
                    subscription_id, remote.customer_id)
        return
    apply_stripe_subscription(tenant_id, remote, stripe_event_id=event.id)


def handle_checkout_session_completed(event: WebhookEvent) -> None:
    session = event.object
    if session.get("mode") in ("payment", "setup"):
        handle_credits_checkout(event)
        return
    subscription_id = id_of(session.get("subscription"))
    reference = str(session.get("client_reference_id") or "")
    if session.get("mode") != "subscription" or not subscription_id or not reference.isdigit():
        return
    if not Subscription.objects.filter(tenant_id=int(reference)).exists():
        log.warning("event %s: checkout for unknown tenant %s; ignored", event.id, reference)
        return
    sync_subscription(event, subscription_id, tenant_id=int(reference), customer_id=id_of(session.get("customer")))


def handle_subscription_changed(event: WebhookEvent) -> None:
    """customer.subscription.created, .updated and .deleted."""
    subscription = event.object
    sync_subscription(event, id_of(subscription.get("id")), customer_id=id_of(subscription.get("customer")))


def subscription_of_invoice(invoice: dict) -> str:
    # Since 2025-03-31.basil at parent.subscription_details.subscription; the top-level field is
    # read too for endpoints still on an older API version.
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return id_of(details.get("subscription")) or id_of(invoice.get("subscription"))


def handle_invoice_changed(event: WebhookEvent) -> None:
    """invoice.paid (restores after dunning) and invoice.payment_failed (starts it)."""
    invoice = event.object
    subscription_id = subscription_of_invoice(invoice)
    if not subscription_id:
        return  # a one-off invoice: no plan depends on it
    sync_subscription(event, subscription_id, customer_id=id_of(invoice.get("customer")))


# Credits (billing/credit_checkout.py): the metadata we set routes an event; what it is worth
# is read again from Stripe.
CREDIT_PURPOSES = {"credits", "auto_top_up_card", "top_up"}


def is_for_credits(obj: dict) -> bool:
    return (obj.get("metadata") or {}).get("purpose") in CREDIT_PURPOSES


def handle_credits_checkout(event: WebhookEvent) -> None:
    """checkout.session.completed (payment and setup mode) and .async_payment_succeeded."""
    if is_for_credits(event.object):
        credit_checkout.apply_checkout(id_of(event.object.get("id")), stripe_event_id=event.id)


def handle_payment_intent(event: WebhookEvent) -> None:
    """payment_intent.succeeded and .payment_failed: a purchase or an auto top-up."""
    if is_for_credits(event.object):
        credit_checkout.apply_payment(id_of(event.object.get("id")), stripe_event_id=event.id)


def handle_refund(event: WebhookEvent) -> None:
    """charge.refunded (its object the charge), charge.refund.updated and refund.updated (the
    refund: a pending one that succeeded). Either names the PaymentIntent whose refunds are read."""
    payment_intent_id = id_of(event.object.get("payment_intent"))
    if payment_intent_id:
        credit_checkout.apply_refunds(payment_intent_id, stripe_event_id=event.id)


HANDLERS = {
    "checkout.session.completed": handle_checkout_session_completed,
    "checkout.session.async_payment_succeeded": handle_credits_checkout,
    "payment_intent.succeeded": handle_payment_intent,
    "payment_intent.payment_failed": handle_payment_intent,
    "charge.refunded": handle_refund,
    "charge.refund.updated": handle_refund,
    "refund.updated": handle_refund,
    "customer.subscription.created": handle_subscription_changed,
    "customer.subscription.updated": handle_subscription_changed,
    "customer.subscription.deleted": handle_subscription_changed,
    "invoice.paid": handle_invoice_changed,
    "invoice.payment_failed": handle_invoice_changed,
}
