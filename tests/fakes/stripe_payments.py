"""The fake Stripe API's one-off payments (mixed into tests/fakes/stripe_api.FakeStripe): Checkout
in payment and setup mode, off-session PaymentIntents, refunds, in Stripe's shapes.

    POST /v1/checkout/sessions  mode=payment | mode=setup   (mode=subscription: stripe_api.py)
    GET  /v1/checkout/sessions/{id}     expand[]= payment_intent.latest_charge, setup_intent.payment_method
    POST /v1/payment_intents            confirm + off_session: succeeds, or 402 card_error for a
                                        declining card (its error carries the PaymentIntent, as Stripe's)
    GET  /v1/payment_intents/{id}       expand[]=latest_charge
    GET  /v1/refunds?payment_intent=

Stripe's side: pay_checkout(), save_card() (a card that declines later, if asked), refund() (pending,
if asked) and settle_refund(); the events they return are built by FakeStripe.event().
``lose_payment_answers``: that many PaymentIntent creations happen but are answered with a 500
(the answer lost on the way back); the same Idempotency-Key then replays the first answer, as
Stripe does, and sent with other parameters is a 400 idempotency_error. ``payment_errors``: the
next PaymentIntent creations are refused with these (status, error) before anything happens
(RESTRICTED_KEY, MISSING_PARAM: Stripe's bodies; a wrong secret key is a 401 of FakeStripe.read).
"""

import json
import time

from aiohttp import web

DECLINE = {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
           "message": "Your card has insufficient funds."}
RESTRICTED_KEY = (403, {"type": "invalid_request_error", "message": (
    "The provided key 'rk_test_****fake' does not have the required permissions for this endpoint on account "
    "'acct_fake'. Having the 'rak_payment_intent_write' permission would allow this request to continue.")})
MISSING_PARAM = (400, {"type": "invalid_request_error", "code": "parameter_missing", "param": "customer",
                       "message": "Missing required param: customer.",
                       "doc_url": "https://stripe.com/docs/error-codes/parameter-missing"})


def copy(value: dict) -> dict:
    return json.loads(json.dumps(value))


class StripePayments:
    def reset_payments(self) -> None:
        self.payment_intents: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.setup_intents: dict[str, dict] = {}
        self.payment_methods: dict[str, dict] = {}
        self.refunds: list[dict] = []
        self.declining_methods: set[str] = set()
        self.payment_replays: dict[str, tuple[dict, int, dict]] = {}  # Idempotency-Key -> (form, first answer)
        self.lose_payment_answers = 0
        self.payment_errors: list[tuple[int, dict]] = []

    def add_payment_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/checkout/sessions/{id}", self.retrieve_checkout_session)
        app.router.add_post("/v1/payment_intents", self.create_payment_intent)
        app.router.add_get("/v1/payment_intents/{id}", self.retrieve_payment_intent)
        app.router.add_get("/v1/refunds", self.list_refunds)

    # --- the API ------------------------------------------------------------------------------

    def new_payment_session(self, form: dict) -> dict | None:
        """A payment- or setup-mode session from the create form; None if the form lacks what
        Stripe requires."""
        mode = form.get("mode")
        if mode == "payment" and not form.get("line_items"):
            return None
        if mode == "setup" and not (form.get("payment_method_types") or form.get("currency")):
            return None
        session_id = self.new_id("cs_test")
        session = {"id": session_id, "object": "checkout.session", "mode": mode, "status": "open",
                   "payment_status": "unpaid" if mode == "payment" else "no_payment_required",
                   "url": f"https://checkout.stripe.com/c/pay/{session_id}", "customer": form.get("customer"),
                   "client_reference_id": form.get("client_reference_id"), "metadata": form.get("metadata", {}),
                   "payment_intent": None, "setup_intent": None, "subscription": None, "livemode": False,
                   "amount_total": None, "currency": None,
                   "line_items_requested": form.get("line_items", []),
                   "payment_intent_data_requested": form.get("payment_intent_data", {})}
        if mode == "payment":
            amount = sum(int(line["price_data"]["unit_amount"]) * int(line.get("quantity", 1))
                         for line in form["line_items"])
            session.update(amount_total=amount, currency=form["line_items"][0]["price_data"]["currency"])
        self.sessions[session_id] = session
        return session

    async def retrieve_checkout_session(self, request: web.Request) -> web.Response:
        query, refused = await self.read(request)
        if refused:
            return refused
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return self.error(404, f"No such checkout.session: '{request.match_info['id']}'",
                              code="resource_missing", param="id")
        return web.json_response(self.expand(self.public_session(session), query.get("expand") or []))

    async def create_payment_intent(self, request: web.Request) -> web.Response:
        form, refused = await self.read(request)
        if refused:
            return refused
        if self.payment_errors:  # refused before it runs: nothing is kept for its key
            status, error = self.payment_errors.pop(0)
            return web.json_response({"error": error}, status=status, headers={"Request-Id": "req_fake"})
        key = request.headers.get("Idempotency-Key")
        if key in self.payment_replays:
            first_form, status, body = self.payment_replays[key]
            if form != first_form:
                return self.error(400, "Keys for idempotent requests can only be used with the same parameters "
                                  f"they were first used with. Try using a key other than '{key}' if you meant "
                                  "to execute a different request.", type_="idempotency_error")
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        if form.get("customer") not in self.customers or form.get("payment_method") not in self.payment_methods:
            return self.error(400, "No such customer or payment method.", code="resource_missing")
        status, body = self.charge(form)
        if key:
            self.payment_replays[key] = (form, status, body)
        if self.lose_payment_answers:
            self.lose_payment_answers -= 1
            return self.error(500, "An unknown error occurred.", type_="api_error", retry=False)
        return web.json_response(body, status=status)

    def charge(self, form: dict) -> tuple[int, dict]:
        method_id = form["payment_method"]
        declines = method_id in self.declining_methods
        intent = self.new_payment_intent(int(form["amount"]), form["currency"], form["customer"], method_id,
                                         form.get("metadata", {}), succeeded=not declines)
        if declines:
            error = {**DECLINE, "payment_intent": copy(intent), "payment_method": copy(self.payment_methods[method_id]),
                     "doc_url": "https://stripe.com/docs/error-codes/card-declined"}
            return 402, {"error": error}
        return 200, self.expand(copy(intent), form.get("expand") or [])

    async def retrieve_payment_intent(self, request: web.Request) -> web.Response:
        query, refused = await self.read(request)
        if refused:
            return refused
        intent = self.payment_intents.get(request.match_info["id"])
        if intent is None:
            return self.error(404, f"No such payment_intent: '{request.match_info['id']}'",
                              code="resource_missing", param="id")
        return web.json_response(self.expand(copy(intent), query.get("expand") or []))

    async def list_refunds(self, request: web.Request) -> web.Response:
        _, refused = await self.read(request)
        if refused:
            return refused
        mine = [r for r in self.refunds if r["payment_intent"] == request.query.get("payment_intent")]
        return web.json_response({"object": "list", "url": "/v1/refunds", "has_more": False, "data": mine})

    # --- expanding, as ?expand[]=a.b does --------------------------------------------------------

    def lookup(self, object_id: str) -> dict | None:
        stores = {"pi_": self.payment_intents, "ch_": self.charges, "seti_": self.setup_intents,
                  "pm_": self.payment_methods}
        for prefix, store in stores.items():
            if object_id.startswith(prefix):
                return store.get(object_id)
        return None

    def expand(self, obj: dict, paths: list[str]) -> dict:
        for path in paths:
            head, _, rest = path.partition(".")
            value = obj.get(head)
            if isinstance(value, str) and self.lookup(value) is not None:
                obj[head] = copy(self.lookup(value))
            if rest and isinstance(obj.get(head), dict):
                obj[head] = self.expand(obj[head], [rest])
        return obj

    @staticmethod
    def public_session(session: dict) -> dict:
        return copy({k: v for k, v in session.items() if not k.endswith("_requested")})

    # --- Stripe's side: what customers (and operators) do -----------------------------------------

    def new_payment_intent(self, amount: int, currency: str, customer: str, method_id: str, metadata: dict, *,
                           succeeded: bool) -> dict:
        intent_id = self.new_id("pi")
        intent = {"id": intent_id, "object": "payment_intent", "amount": amount, "currency": currency,
                  "amount_received": amount if succeeded else 0, "customer": customer,
                  "payment_method": method_id, "metadata": dict(metadata), "created": int(time.time()),
                  "status": "succeeded" if succeeded else "requires_payment_method", "latest_charge": None,
                  "last_payment_error": None if succeeded else {**DECLINE, "payment_method": {"id": method_id}},
                  "livemode": False}
        charge_id = self.new_id("ch")
        self.charges[charge_id] = {
            "id": charge_id, "object": "charge", "amount": amount, "amount_refunded": 0, "currency": currency,
            "customer": customer, "payment_intent": intent_id, "paid": succeeded, "refunded": False,
            "status": "succeeded" if succeeded else "failed",
            "receipt_url": f"https://pay.stripe.com/receipts/payment/{charge_id}" if succeeded else None}
        intent["latest_charge"] = charge_id
        self.payment_intents[intent_id] = intent
        return intent

    def pay_checkout(self, session_id: str) -> dict:
        """The customer pays a payment-mode session: its PaymentIntent succeeds. Returns the
        checkout.session.completed event (payment_intent_succeeded() builds the other one)."""
        session = self.sessions[session_id]
        method = self.new_card()
        intent = self.new_payment_intent(session["amount_total"], session["currency"], session["customer"],
                                         method["id"], session["payment_intent_data_requested"].get("metadata", {}),
                                         succeeded=True)
        session.update(status="complete", payment_status="paid", payment_intent=intent["id"])
        return self.event("checkout.session.completed", self.public_session(session))

    def save_card(self, session_id: str, *, declines: bool = False) -> dict:
        """The customer enters a card in a setup-mode session (one whose later charges decline,
        if asked). Returns the checkout.session.completed event."""
        session = self.sessions[session_id]
        method = self.new_card(declines=declines)
        setup_id = self.new_id("seti")
        self.setup_intents[setup_id] = {"id": setup_id, "object": "setup_intent", "status": "succeeded",
                                        "customer": session["customer"], "payment_method": method["id"],
                                        "usage": "off_session", "metadata": session["metadata"]}
        session.update(status="complete", setup_intent=setup_id)
        return self.event("checkout.session.completed", self.public_session(session))

    def new_card(self, *, declines: bool = False) -> dict:
        method_id = self.new_id("pm")
        last4 = "0002" if declines else "4242"  # Stripe's test cards: declined, and always succeeds
        self.payment_methods[method_id] = {"id": method_id, "object": "payment_method", "type": "card",
                                           "card": {"brand": "visa", "last4": last4, "exp_month": 12,
                                                    "exp_year": 2030}}
        if declines:
            self.declining_methods.add(method_id)
        return self.payment_methods[method_id]

    def payment_intent_event(self, intent_id: str) -> dict:
        """payment_intent.succeeded or .payment_failed, as the PaymentIntent stands now."""
        intent = self.payment_intents[intent_id]
        kind = "payment_intent.succeeded" if intent["status"] == "succeeded" else "payment_intent.payment_failed"
        return self.event(kind, copy(intent))

    def refund(self, intent_id: str, amount: int | None = None, *, status: str = "succeeded") -> dict:
        """An operator refunds (part of) a payment in Stripe's dashboard (a refund that is
        ``pending`` at first, if asked): the charge.refunded event."""
        charge = self.charges[self.payment_intents[intent_id]["latest_charge"]]
        amount = charge["amount"] - charge["amount_refunded"] if amount is None else amount
        self.refunds.append({"id": self.new_id("re"), "object": "refund", "amount": amount, "status": status,
                             "currency": charge["currency"], "charge": charge["id"], "payment_intent": intent_id,
                             "created": int(time.time())})
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return self.event("charge.refunded", copy(charge))

    def settle_refund(self, refund_id: str) -> dict:
        """A pending refund succeeds: the charge.refund.updated event (its object is the refund)."""
        refund = next(r for r in self.refunds if r["id"] == refund_id)
        refund["status"] = "succeeded"
        return self.event("charge.refund.updated", copy(refund), previous_attributes={"status": "pending"})

    def payment_intents_created(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == "/v1/payment_intents"]
