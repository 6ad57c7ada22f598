"""A fake Stripe API over real HTTP on 127.0.0.1, for stripe-python pointed at it (api_base).

It answers the calls Tollgate makes, in Stripe's shapes (../shared/providers/WIRE_FORMATS.md
section 9, fields where 2025-03-31.basil and later put them): form-encoded bodies with bracket
notation, ``Authorization: Bearer``, ``Idempotency-Key`` replays, the ``{"error": {...}}`` body.

    POST /v1/customers                    POST /v1/checkout/sessions
    POST /v1/billing_portal/sessions      GET  /v1/subscriptions/{id}
    POST /v1/billing/meter_events         (identifiers deduplicated, as Stripe does)
    GET  /v1/invoices?customer=           (the invoices invoice() made, newest first)
    one-off payments, saved cards and refunds: tests/fakes/stripe_payments.py

It also plays Stripe's side of what customers do (complete_checkout, update_subscription,
invoice) and builds webhook events, signed exactly as Stripe signs them (sign()).
Every request is kept in ``requests``.
"""

import hashlib
import hmac
import itertools
import json
import threading
import time
from typing import Any

from aiohttp import web

from tests.fakes.server import ThreadedServer
from tests.fakes.stripe_payments import StripePayments

SECRET_KEY = "sk_test_tollgate_fake"
WEBHOOK_SECRET = "whsec_test_tollgate_fake"
PUBLISHABLE_KEY = "pk_test_tollgate_fake"
API_VERSION = "2026-10-28.endive"
PERIOD_SECONDS = 30 * 24 * 3600


def parse_form(pairs) -> dict:
    """Stripe's bracket notation back into nested dicts and lists: a[b][0][c]=1."""
    root: dict = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node: Any = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return listify(root)


def listify(node):
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [listify(node[key]) for key in sorted(node, key=int)]
    return {key: listify(value) for key, value in node.items()}


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header: t=<unix time>,v1=HMAC-SHA256(secret, "t.payload")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


class FakeStripe(StripePayments, ThreadedServer):
    thread_name = "fake-stripe"

    def __init__(self) -> None:
        super().__init__()
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests: list[dict] = []
        self.customers: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.meter_events: list[dict] = []  # every accepted call
        self.invoices: list[dict] = []  # every invoice() made, oldest first
        self.counted_identifiers: list[str] = []  # what Stripe bills: each identifier once
        self.idempotent: dict[str, dict] = {}
        self.fail_meter_events = 0  # answer this many meter event calls with a 500
        self.unavailable = False  # answer everything with a 500 (Stripe-Should-Retry: false)
        self.reset_payments()

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self.ids):05d}"

    # --- the API ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/customers", self.create_customer)
        app.router.add_post("/v1/checkout/sessions", self.create_checkout_session)
        app.router.add_post("/v1/billing_portal/sessions", self.create_portal_session)
        app.router.add_get("/v1/subscriptions/{id}", self.retrieve_subscription)
        app.router.add_post("/v1/billing/meter_events", self.create_meter_event)
        app.router.add_get("/v1/invoices", self.list_invoices)
        self.add_payment_routes(app)
        return app

    @staticmethod
    def error(status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None,
              param: str | None = None, retry: bool | None = None) -> web.Response:
        headers = {"Request-Id": "req_fake"}
        if retry is not None:
            headers["Stripe-Should-Retry"] = "true" if retry else "false"
        return web.json_response({"error": {"type": type_, "code": code, "message": message, "param": param}},
                                 status=status, headers=headers)

    async def read(self, request: web.Request) -> tuple[dict, web.Response | None]:
        form = parse_form((await request.post()).items() if request.method == "POST" else request.query.items())
        self.requests.append({"method": request.method, "path": request.path, "form": form,
                              "headers": dict(request.headers)})
        if self.unavailable:
            return form, self.error(500, "An unknown error occurred.", type_="api_error", retry=False)
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            return form, self.error(401, "Invalid API Key provided.", code=None)
        return form, None

    def replay(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("Idempotency-Key")
        if key and key in self.idempotent:
            return web.json_response(self.idempotent[key], headers={"Idempotent-Replayed": "true"})
        return None

    def answer(self, request: web.Request, body: dict) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key:
            self.idempotent[key] = body
        return web.json_response(body, headers={"Request-Id": f"req_{self.new_id('r')}"})

    async def create_customer(self, request: web.Request) -> web.Response:
        form, refused = await self.read(request)
        if refused:
            return refused
        replayed = self.replay(request)
        if replayed:
            return replayed
        customer = {"id": self.new_id("cus"), "object": "customer", "email": form.get("email"),
                    "name": form.get("name"), "metadata": form.get("metadata", {}), "livemode": False,
                    "created": int(time.time())}
        self.customers[customer["id"]] = customer
        return self.answer(request, customer)

    async def create_checkout_session(self, request: web.Request) -> web.Response:
        form, refused = await self.read(request)
        if refused:
            return refused
        if form.get("customer") and form["customer"] not in self.customers:
            return self.error(400, f"No such customer: '{form['customer']}'", code="resource_missing",
                              param="customer")
        if form.get("mode") in ("payment", "setup"):
            session = self.new_payment_session(form)
            if session is None:
                return self.error(400, "Missing required param: line_items or payment_method_types.")
            return self.answer(request, self.public_session(session))
        if form.get("mode") != "subscription" or not form.get("line_items"):
            return self.error(400, "Missing required param: line_items.", param="line_items")
        session_id = self.new_id("cs_test")
        session = {"id": session_id, "object": "checkout.session", "mode": "subscription", "status": "open",
                   "payment_status": "unpaid", "url": f"https://checkout.stripe.com/c/pay/{session_id}",
                   "customer": form.get("customer"), "client_reference_id": form.get("client_reference_id"),
                   "subscription": None, "metadata": form.get("metadata", {}),
                   "success_url": form.get("success_url"), "cancel_url": form.get("cancel_url"),
                   "line_items_requested": form["line_items"],
                   "subscription_data_requested": form.get("subscription_data", {})}
        self.sessions[session_id] = session
        return self.answer(request, public(session))

    async def create_portal_session(self, request: web.Request) -> web.Response:
        form, refused = await self.read(request)
        if refused:
            return refused
        if form.get("customer") not in self.customers:
            return self.error(400, f"No such customer: '{form.get('customer')}'", code="resource_missing",
                              param="customer")
        session_id = self.new_id("bps")
        return self.answer(request, {"id": session_id, "object": "billing_portal.session",
                                     "customer": form["customer"], "return_url": form.get("return_url"),
                                     "url": f"https://billing.stripe.com/p/session/{session_id}", "livemode": False})

    async def retrieve_subscription(self, request: web.Request) -> web.Response:
        _, refused = await self.read(request)
        if refused:
            return refused
        subscription = self.subscriptions.get(request.match_info["id"])
        if subscription is None:
            return self.error(404, f"No such subscription: '{request.match_info['id']}'", code="resource_missing",
                              param="id")
        return web.json_response(subscription)

    async def list_invoices(self, request: web.Request) -> web.Response:
        _, refused = await self.read(request)
        if refused:
            return refused
        customer, limit = request.query.get("customer"), int(request.query.get("limit", 10))
        mine = [i for i in reversed(self.invoices) if customer is None or i["customer"] == customer]
        return web.json_response({"object": "list", "url": "/v1/invoices", "has_more": len(mine) > limit,
                                  "data": mine[:limit]})

    async def create_meter_event(self, request: web.Request) -> web.Response:
        form, refused = await self.read(request)
        if refused:
            return refused
        if self.fail_meter_events:
            self.fail_meter_events -= 1
            return self.error(500, "An unknown error occurred.", type_="api_error", retry=False)
        payload = form.get("payload") or {}
        if not form.get("event_name") or "stripe_customer_id" not in payload or not str(payload.get("value", "")
                                                                                      ).isdigit():
            return self.error(400, "Missing event_name, payload[stripe_customer_id] or payload[value].")
        identifier = form.get("identifier") or self.new_id("mev")
        event = {"object": "billing.meter_event", "created": int(time.time()), "event_name": form["event_name"],
                 "identifier": identifier, "livemode": False, "payload": payload,
                 "timestamp": int(form.get("timestamp") or time.time())}
        self.meter_events.append(event)
        if identifier not in self.counted_identifiers:
            self.counted_identifiers.append(identifier)
        return web.json_response(event)

    # --- Stripe's side: what happens when the customer acts -------------------------------

    def complete_checkout(self, session_id: str, *, status: str = "active") -> dict:
        """The customer paid: the session completes and its subscription exists. Returns the
        checkout.session.completed event."""
        session = self.sessions[session_id]
        now = int(time.time())
        subscription_id = self.new_id("sub")
        items = []
        for line in session["line_items_requested"]:
            items.append({"id": self.new_id("si"), "object": "subscription_item", "quantity": int(line.get("quantity", 1)),
                          "price": {"id": line["price"], "object": "price", "active": True, "currency": "usd",
                                    "recurring": {"interval": "month", "usage_type": "licensed"}},
                          "current_period_start": now, "current_period_end": now + PERIOD_SECONDS,
                          "subscription": subscription_id})
        self.subscriptions[subscription_id] = {
            "id": subscription_id, "object": "subscription", "customer": session["customer"], "status": status,
            "cancel_at_period_end": False, "cancel_at": None, "canceled_at": None, "ended_at": None,
            "created": now, "livemode": False,
            "metadata": dict(session["subscription_data_requested"].get("metadata", {})),
            "items": {"object": "list", "data": items, "has_more": False,
                      "url": f"/v1/subscription_items?subscription={subscription_id}"},
        }
        session.update(status="complete", payment_status="paid", subscription=subscription_id)
        return self.event("checkout.session.completed", public(session))

    def update_subscription(self, subscription_id: str, **changes) -> dict:
        subscription = self.subscriptions[subscription_id]
        subscription.update(changes)
        return json.loads(json.dumps(subscription))

    def swap_price(self, subscription_id: str, price_id: str) -> dict:
        self.subscriptions[subscription_id]["items"]["data"][0]["price"]["id"] = price_id
        return self.update_subscription(subscription_id)

    def invoice(self, subscription_id: str, *, paid: bool) -> dict:
        subscription = self.subscriptions[subscription_id]
        item = subscription["items"]["data"][0]
        invoice_id = self.new_id("in")
        invoice = {"id": invoice_id, "object": "invoice", "customer": subscription["customer"],
                   "number": f"TG-{len(self.invoices) + 1:04d}", "created": int(time.time()),
                   "invoice_pdf": f"https://pay.stripe.com/invoice/{invoice_id}/pdf",
                   "status": "paid" if paid else "open", "amount_paid": 9900 if paid else 0,
                   "amount_due": 9900, "currency": "usd", "billing_reason": "subscription_cycle",
                   "attempt_count": 1, "next_payment_attempt": None if paid else int(time.time()) + 3 * 86400,
                   "hosted_invoice_url": "https://invoice.stripe.com/i/fake",
                   "parent": {"type": "subscription_details", "quote_details": None,
                              "subscription_details": {"subscription": subscription_id,
                                                       "metadata": subscription["metadata"]}},
                   "lines": {"object": "list", "has_more": False, "data": [
                       {"object": "line_item", "period": {"start": item["current_period_start"],
                                                          "end": item["current_period_end"]}}]}}
        self.invoices.append(invoice)
        return json.loads(json.dumps(invoice))

    def event(self, type_: str, obj: dict, *, previous_attributes: dict | None = None) -> dict:
        data = {"object": obj}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        return {"id": self.new_id("evt"), "object": "event", "api_version": API_VERSION, "created": int(time.time()),
                "livemode": False, "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
                "type": type_, "data": data}

    def requests_to(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]


def public(session: dict) -> dict:
    return {k: v for k, v in session.items() if not k.endswith("_requested") and k not in ("success_url",
                                                                                               "cancel_url")}


def signed(event: dict, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, dict]:
    """The body and headers Stripe POSTs to a webhook endpoint."""
    payload = json.dumps(event, indent=2)
    return payload.encode(), {"Stripe-Signature": sign(payload, secret, timestamp),
                              "Content-Type": "application/json; charset=utf-8"}


_shared: FakeStripe | None = None
_shared_lock = threading.Lock()


def shared_fake() -> FakeStripe:
    """One fake per test session, started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = FakeStripe().start()
        return _shared


def use_fake_stripe(settings) -> FakeStripe:
    """Point the gateway's settings (pytest-django's ``settings``) at a clean shared fake."""
    fake = shared_fake()
    fake.reset()
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_API_BASE = fake.address
    return fake
