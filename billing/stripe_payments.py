"""Stripe calls for prepaid credits: one-off payments (Checkout in payment mode), a saved card
(Checkout in setup mode) charged off-session for auto top-ups, and the refunds of a payment.

Every call goes through billing.stripe_api's client (the API version pinned there) and its
``calling_stripe`` error mapping; callers get the dataclasses below and stripe_api's errors.
Amounts cross the boundary in the currency's smallest unit (``cents``, ``dollars``).
"""

from dataclasses import dataclass
from decimal import Decimal

from billing.stripe_api import CheckoutSession, calling_stripe, client, id_of

CURRENCY = "usd"  # credits are USD, as every price is


def cents(amount: Decimal) -> int:
    value = amount * 100
    if value != value.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of cents")
    return int(value)


def dollars(value: int) -> Decimal:
    return (Decimal(value) / 100).quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class RemotePayment:
    """A PaymentIntent as Stripe holds it now; ``metadata`` is what we set on it."""

    id: str
    status: str  # requires_payment_method, requires_action, processing, succeeded, canceled, ...
    amount_received: int  # smallest currency unit
    currency: str
    customer_id: str
    metadata: dict
    receipt_url: str
    failure: str  # last_payment_error.message


@dataclass(frozen=True, slots=True)
class SavedCard:
    payment_method_id: str
    label: str  # "visa •••• 4242"


@dataclass(frozen=True, slots=True)
class RemoteCheckout:
    """A Checkout Session as Stripe holds it now, with its PaymentIntent (payment mode) or the
    card its SetupIntent saved (setup mode)."""

    id: str
    mode: str
    status: str  # open, complete, expired
    payment_status: str  # paid, unpaid, no_payment_required
    customer_id: str
    metadata: dict
    payment: RemotePayment | None
    card: SavedCard | None


@dataclass(frozen=True, slots=True)
class RemoteRefund:
    id: str
    amount: int
    status: str  # pending, requires_action, succeeded, failed, canceled
    payment_intent_id: str


def read_payment(data: dict) -> RemotePayment:
    charge = data.get("latest_charge") if isinstance(data.get("latest_charge"), dict) else {}
    return RemotePayment(
        id=data["id"], status=data.get("status") or "", amount_received=int(data.get("amount_received") or 0),
        currency=data.get("currency") or "", customer_id=id_of(data.get("customer")),
        metadata=dict(data.get("metadata") or {}), receipt_url=charge.get("receipt_url") or "",
        failure=(data.get("last_payment_error") or {}).get("message") or "",
    )


def read_card(setup_intent) -> SavedCard | None:
    if not isinstance(setup_intent, dict) or setup_intent.get("status") != "succeeded":
        return None
    method = setup_intent.get("payment_method")
    card = (method.get("card") or {}) if isinstance(method, dict) else {}
    label = f"{card.get('brand', 'card')} •••• {card.get('last4', '????')}"
    return SavedCard(payment_method_id=id_of(method), label=label) if id_of(method) else None


@calling_stripe
def create_credit_checkout_session(*, customer_id: str, tenant_id: int, amount: Decimal, success_url: str,
                                   cancel_url: str) -> CheckoutSession:
    metadata = {"tenant_id": str(tenant_id), "purpose": "credits"}
    session = client().v1.checkout.sessions.create(params={
        "mode": "payment", "customer": customer_id, "client_reference_id": str(tenant_id),
        "line_items": [{"quantity": 1, "price_data": {
            "currency": CURRENCY, "unit_amount": cents(amount), "product_data": {"name": "Tollgate credits"}}}],
        "success_url": success_url, "cancel_url": cancel_url, "metadata": metadata,
        "payment_intent_data": {"metadata": metadata, "description": "Tollgate credits"},
    })
    return CheckoutSession(id=session.id, url=session.url)


@calling_stripe
def create_card_setup_session(*, customer_id: str, tenant_id: int, success_url: str,
                              cancel_url: str) -> CheckoutSession:
    metadata = {"tenant_id": str(tenant_id), "purpose": "auto_top_up_card"}
    session = client().v1.checkout.sessions.create(params={
        "mode": "setup", "customer": customer_id, "client_reference_id": str(tenant_id),
        "payment_method_types": ["card"], "success_url": success_url, "cancel_url": cancel_url,
        "metadata": metadata, "setup_intent_data": {"metadata": metadata},
    })
    return CheckoutSession(id=session.id, url=session.url)


@calling_stripe
def retrieve_checkout(session_id: str) -> RemoteCheckout:
    data = client().v1.checkout.sessions.retrieve(
        session_id, params={"expand": ["payment_intent.latest_charge", "setup_intent.payment_method"]}).to_dict()
    intent = data.get("payment_intent")
    return RemoteCheckout(
        id=data["id"], mode=data.get("mode") or "", status=data.get("status") or "",
        payment_status=data.get("payment_status") or "", customer_id=id_of(data.get("customer")),
        metadata=dict(data.get("metadata") or {}), payment=read_payment(intent) if isinstance(intent, dict) else None,
        card=read_card(data.get("setup_intent")),
    )


@calling_stripe
def retrieve_payment(payment_intent_id: str) -> RemotePayment:
    data = client().v1.payment_intents.retrieve(payment_intent_id, params={"expand": ["latest_charge"]})
    return read_payment(data.to_dict())


@calling_stripe
def charge_saved_card(*, customer_id: str, payment_method_id: str, amount: Decimal, metadata: dict,
                      idempotency_key: str) -> RemotePayment:
    """Charge the saved card with nobody present; a decline raises CardDeclined. The same key
    within Stripe's 24 hours returns the first answer instead of charging again."""
    intent = client().v1.payment_intents.create(params={
        "amount": cents(amount), "currency": CURRENCY, "customer": customer_id,
        "payment_method": payment_method_id, "off_session": True, "confirm": True,
        "description": "Tollgate credits: auto top-up", "metadata": metadata, "expand": ["latest_charge"],
    }, options={"idempotency_key": idempotency_key})
    return read_payment(intent.to_dict())


@calling_stripe
def list_refunds(payment_intent_id: str) -> list[RemoteRefund]:
    page = client().v1.refunds.list(params={"payment_intent": payment_intent_id, "limit": 100})
    return [RemoteRefund(id=refund.id, amount=int(refund.amount or 0), status=refund.status or "",
                         payment_intent_id=payment_intent_id) for refund in page.data]
