"""Every call Tollgate makes to Stripe but the credit payments (billing/stripe_payments.py, which
calls through this module's client), and the only module that imports ``stripe``.

Configured from settings: STRIPE_SECRET_KEY (calls), STRIPE_WEBHOOK_SECRET (webhook
signatures), STRIPE_PUBLISHABLE_KEY (pages) and STRIPE_API_BASE (another API host: a local
fake in tests). Without a secret key billing is not configured and nothing here is called.

The API version is pinned to the one stripe==16.1.0 is generated for, so the shapes we read
never move under us; bump API_VERSION together with the package. Field locations we rely on
(since 2025-03-31.basil): the period end lives on subscription items, and an invoice names its
subscription at ``parent.subscription_details.subscription``.

Vendor objects stop here: callers get small dataclasses and our own errors.

    BillingError
     ├── BillingNotConfigured   no STRIPE_SECRET_KEY (or no webhook secret for webhooks)
     ├── StripeRefused          Stripe answered 4xx: our request, our key or its object is wrong (an
     │    │                     operator's to fix: retrying it unchanged fails the same way until then)
     │    ├── StripeObjectMissing   resource_missing (an id Stripe does not know)
     │    └── CardDeclined          card_error: the card was declined, or the bank wants the customer
     │                              (the customer's to fix, with another card)
     └── StripeUnavailable      network, 5xx, rate limit: try again later
"""

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

import stripe
from django.conf import settings

API_VERSION = "2026-10-28.endive"
TIMEOUT_SECONDS = 20
MAX_NETWORK_RETRIES = 2


class BillingError(Exception):
    pass


class BillingNotConfigured(BillingError):
    pass


class StripeRefused(BillingError):
    pass


class StripeObjectMissing(StripeRefused):
    pass


class CardDeclined(StripeRefused):
    def __init__(self, message: str, *, code: str = "", payment_intent_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.payment_intent_id = payment_intent_id


class StripeUnavailable(BillingError):
    pass


class InvalidWebhook(BillingError):
    """The signature does not verify, is stale, or the body is not an event."""


def is_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def is_webhook_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


@functools.lru_cache(maxsize=4)
def _client_for(secret_key: str, api_base: str) -> stripe.StripeClient:
    bases = {"api": api_base, "meter_events": api_base} if api_base else None
    return stripe.StripeClient(
        secret_key, stripe_version=API_VERSION, base_addresses=bases, max_network_retries=MAX_NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
    )


def client() -> stripe.StripeClient:
    """One client per configuration and process (it keeps a pooled HTTP session)."""
    if not is_configured():
        raise BillingNotConfigured("Billing is not configured: STRIPE_SECRET_KEY is not set.")
    return _client_for(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


def calling_stripe(function):
    """Map stripe-python's errors to ours at the boundary."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                raise StripeObjectMissing(exc.user_message or str(exc)) from exc
            raise StripeRefused(exc.user_message or str(exc)) from exc
        except stripe.CardError as exc:
            error = (exc.json_body or {}).get("error") or {}
            raise CardDeclined(exc.user_message or str(exc), code=error.get("decline_code") or exc.code or "",
                               payment_intent_id=id_of(error.get("payment_intent"))) from exc
        except (stripe.AuthenticationError, stripe.PermissionError, stripe.IdempotencyError) as exc:
            raise StripeRefused(exc.user_message or str(exc)) from exc
        except stripe.StripeError as exc:
            raise StripeUnavailable(exc.user_message or str(exc)) from exc

    return call


def timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def id_of(value) -> str:
    """Stripe sends a related object as its id, or expanded as the object."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


# --- customers, checkout, portal -------------------------------------------------------

@calling_stripe
def create_customer(*, tenant_id: int, tenant_slug: str, email: str) -> str:
    # Keyed by tenant: two checkouts started at once get the same customer (Stripe replays
    # the first answer for 24 h) instead of two.
    customer = client().v1.customers.create(
        params={"email": email, "name": tenant_slug, "metadata": {"tenant_id": str(tenant_id),
                                                                     "tenant": tenant_slug}},
        options={"idempotency_key": f"tollgate-customer-{tenant_id}"},
    )
    return customer.id


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    id: str
    url: str


@calling_stripe
def create_checkout_session(*, customer_id: str, tenant_id: int, price_ids: list[str], success_url: str,
                            cancel_url: str, plan_slug: str) -> CheckoutSession:
    line_items = []
    for index, price_id in enumerate(price_ids):
        # Metered prices (overage, after the first) take no quantity.
        line_items.append({"price": price_id, "quantity": 1} if index == 0 else {"price": price_id})
    metadata = {"tenant_id": str(tenant_id), "plan": plan_slug}
    session = client().v1.checkout.sessions.create(params={
        "mode": "subscription", "customer": customer_id, "client_reference_id": str(tenant_id),
        "line_items": line_items, "success_url": success_url, "cancel_url": cancel_url,
        "metadata": metadata, "subscription_data": {"metadata": metadata},
    })
    return CheckoutSession(id=session.id, url=session.url)


@calling_stripe
def create_portal_session(*, customer_id: str, return_url: str) -> str:
    session = client().v1.billing_portal.sessions.create(params={"customer": customer_id, "return_url": return_url})
    return session.url


@dataclass(frozen=True, slots=True)
class InvoiceSummary:
    """One invoice as the billing page lists it; amounts in the currency's smallest unit."""

    id: str
    number: str
    status: str  # draft, open, paid, uncollectible, void
    amount_due: int
    amount_paid: int
    currency: str
    created: datetime | None
    hosted_invoice_url: str
    invoice_pdf: str


@calling_stripe
def list_invoices(*, customer_id: str, limit: int = 12) -> list[InvoiceSummary]:
    """The customer's most recent invoices, newest first (one page; older ones are in the portal)."""
    page = client().v1.invoices.list(params={"customer": customer_id, "limit": limit})
    invoices = []
    for invoice in page.data:
        data = invoice.to_dict()
        invoices.append(InvoiceSummary(
            id=data["id"], number=data.get("number") or "", status=data.get("status") or "",
            amount_due=int(data.get("amount_due") or 0), amount_paid=int(data.get("amount_paid") or 0),
            currency=(data.get("currency") or "usd").upper(), created=timestamp(data.get("created")),
            hosted_invoice_url=data.get("hosted_invoice_url") or "", invoice_pdf=data.get("invoice_pdf") or "",
        ))
    return invoices


# --- subscriptions ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RemoteSubscription:
    """A Stripe subscription as Stripe holds it now (re-fetched, never taken from an event)."""

    id: str
    customer_id: str
    status: str  # incomplete, incomplete_expired, trialing, active, past_due, canceled, unpaid, paused
    price_ids: tuple[str, ...]
    current_period_end: datetime | None
    cancel_at_period_end: bool
    tenant_id: str  # subscription_data.metadata.tenant_id set at checkout; "" when made elsewhere


@calling_stripe
def retrieve_subscription(subscription_id: str) -> RemoteSubscription:
    data = client().v1.subscriptions.retrieve(subscription_id).to_dict()
    items = (data.get("items") or {}).get("data") or []
    period_ends = [item["current_period_end"] for item in items if item.get("current_period_end")]
    customer = data.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return RemoteSubscription(
        id=data["id"], customer_id=customer or "", status=data["status"],
        price_ids=tuple(item["price"]["id"] for item in items if item.get("price")),
        current_period_end=timestamp(max(period_ends)) if period_ends else None,
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        tenant_id=str((data.get("metadata") or {}).get("tenant_id") or ""),
    )


# --- webhooks --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    type: str
    api_version: str
    created: datetime
    livemode: bool
    object: dict  # data.object as plain data


def verify_webhook(payload: bytes, signature_header: str) -> WebhookEvent:
    """stripe-python's own check: HMAC-SHA256 over "t.body" with the whsec_ secret, any v1
    signature matching, t no older than 5 minutes. The body must be the raw bytes received."""
    if not is_webhook_configured():
        raise BillingNotConfigured("Billing webhooks are not configured: STRIPE_WEBHOOK_SECRET is not set.")
    try:
        event = stripe.Webhook.construct_event(payload, signature_header, settings.STRIPE_WEBHOOK_SECRET)
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook(f"signature verification failed: {exc.user_message or exc}") from exc
    except ValueError as exc:
        raise InvalidWebhook(f"not a Stripe event: {exc}") from exc
    data = event.to_dict()
    if not data.get("id") or not data.get("type"):
        raise InvalidWebhook("not a Stripe event: no id or type")
    return WebhookEvent(
        id=data["id"], type=data["type"], api_version=data.get("api_version") or "",
        created=timestamp(data.get("created")) or datetime.now(UTC), livemode=bool(data.get("livemode")),
        object=(data.get("data") or {}).get("object") or {},
    )


# --- usage-based billing -----------------------------------------------------------------

@calling_stripe
def send_meter_event(*, event_name: str, customer_id: str, value: int, identifier: str, at: datetime) -> None:
    # Stripe deduplicates identifiers over at least 24 h: a resend after a lost answer is free.
    client().v1.billing.meter_events.create(
        params={"event_name": event_name, "identifier": identifier, "timestamp": int(at.timestamp()),
                "payload": {"stripe_customer_id": customer_id, "value": str(value)}},
        options={"idempotency_key": f"tollgate-meter-{identifier}"},
    )
