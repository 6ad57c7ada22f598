"""Admission: is this request allowed on the tenant's plan, and can the tenant afford it?

Checked before any provider is called, in this order:
    1. check_model: model and capability on the plan and the key's allow-list  -> 403
       (the endpoint's first check, for every model of its chain, before it says
       anything else about the model)
    2. admit: request rate (django-ratelimit's core, key = API key, rate = plan) -> 429 + Retry-After
    3. admit: the monthly spend cap, reserving the most the request can cost     -> 429 insufficient_quota
The reservation is replaced by the actual cost at settlement (usage.recording).
"""

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from fnmatch import fnmatchcase

from asgiref.sync import sync_to_async
from django.conf import settings
from django_ratelimit import ALL
from django_ratelimit.core import get_usage

from billing.models import Plan
from providers.pricing import most_cost
from usage import recording
from usage.recording import Reservation
from usage.writer import writer


class Refusal(Exception):
    """The plan says no. Carries the status and envelope fields the client sees."""

    def __init__(self, status: int, message: str, *, type: str, code: str, retry_after: int | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.retry_after = retry_after
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the parts of an authenticated key admission needs."""

    tenant_id: int
    tenant_slug: str
    key_id: int
    key_name: str
    key_allowed_models: tuple[str, ...]
    plan: Plan
    provider_keys: dict[str, str] = field(default_factory=dict)  # the tenant's own keys, by provider slug


def upgrade_hint() -> str:
    return f"upgrade at {settings.PUBLIC_BASE_URL}/billing"


def is_model_allowed(caller: Caller, model) -> bool:
    """On the plan (capability, and model id or group) and on the key's own allow-list."""
    plan = caller.plan
    if not (plan.allows_capability(model.capability) and plan.allows_model(model.public_id, model.group)):
        return False
    allowed = caller.key_allowed_models
    return not allowed or any(fnmatchcase(model.public_id, pattern) for pattern in allowed)


def check_model(caller: Caller, model) -> None:
    """is_model_allowed, as a Refusal that says which rule refused and what to do."""
    plan = caller.plan
    if not plan.allows_capability(model.capability):
        raise Refusal(403, f"{model.capability} models are not on plan {plan.name}; {upgrade_hint()}.",
                      type="permission_error", code="capability_not_on_plan")
    if not plan.allows_model(model.public_id, model.group):
        raise Refusal(403, f"model '{model.public_id}' is not on plan {plan.name}; {upgrade_hint()}. "
                      "GET /v1/models lists the models your plan includes.",
                      type="permission_error", code="model_not_on_plan")
    allowed = caller.key_allowed_models
    if allowed and not any(fnmatchcase(model.public_id, pattern) for pattern in allowed):
        raise Refusal(403, f"API key '{caller.key_name}' may not use model '{model.public_id}'; it is limited "
                      f"to {', '.join(allowed)}.", type="permission_error", code="model_not_allowed_for_key")


def plan_rate(group, caller: Caller) -> str:
    return f"{caller.plan.requests_per_minute}/m"


def key_of(group, caller: Caller) -> str:
    return str(caller.key_id)


@dataclass(frozen=True, slots=True)
class RateWindow:
    """Where a key stands in its current rate window (sent as x-ratelimit-* headers)."""

    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {"x-ratelimit-limit-requests": str(self.limit),
                "x-ratelimit-remaining-requests": str(self.remaining),
                "x-ratelimit-reset-requests": f"{self.reset_seconds}s"}


def check_rate(caller: Caller) -> RateWindow:
    # django-ratelimit only reads the "request" through the key and rate callables, so the
    # caller stands in for it; method=ALL skips its HTTP-method filter.
    usage = get_usage(caller, group="v1", key=key_of, rate=plan_rate, method=ALL, increment=True)
    limit = caller.plan.requests_per_minute
    window = RateWindow(limit=limit, remaining=max(0, limit - int(usage["count"])),
                        reset_seconds=max(1, int(usage["time_left"])))
    if usage["should_limit"]:
        raise Refusal(429, f"Rate limit reached: plan {caller.plan.name} allows "
                      f"{limit} requests per minute. Retry in {window.reset_seconds}s, "
                      f"or {upgrade_hint()} for a higher limit.",
                      type="rate_limit_error", code="rate_limit_exceeded", retry_after=window.reset_seconds,
                      headers=window.headers())
    return window


# Per message, the chat template's role and separator tokens; per image, the most any provider
# in the catalog counts for one (high-detail tiles on gpt-4.1-mini-class models).
TOKENS_PER_MESSAGE = 8
TOKENS_PER_IMAGE = 2500


def most_input_tokens(prompt_bytes: int, *, messages: int, images: int) -> int:
    """An upper bound on prompt tokens without a tokenizer: byte-level BPE never makes more
    tokens than UTF-8 bytes."""
    return prompt_bytes + messages * TOKENS_PER_MESSAGE + images * TOKENS_PER_IMAGE


async def reserve_spend(caller: Caller, model, *, request_id: str, input_tokens: int,
                        max_output_tokens: int, byok: bool = False) -> Reservation:
    flat_cost = caller.plan.byok_fee_per_request if byok else None
    amount = flat_cost if byok else most_cost(model.prices, input_tokens=input_tokens,
                                               max_output_tokens=max_output_tokens)
    cap = caller.plan.monthly_spend_limit
    pending = writer.submit(recording.reserve, request_id, caller.tenant_id, amount, cap)
    try:
        month = await asyncio.shield(pending)
    except asyncio.CancelledError:
        # The client left while the reservation was being written: give it back once it is.
        pending.add_done_callback(lambda done: release_abandoned(done, request_id, caller.tenant_id, amount))
        raise
    if month is None:
        raise Refusal(429, f"You exceeded your current quota: plan {caller.plan.name} allows ${cap} of spend per "
                      f"month and this request could cost up to ${amount.quantize(Decimal('0.000001'))}. "
                      f"Lower max_tokens, wait for next month, or {upgrade_hint()}.",
                      type="insufficient_quota", code="insufficient_quota")
    return Reservation(
        request_id=request_id, tenant_id=caller.tenant_id, api_key_id=caller.key_id, model=model.public_id,
        provider=model.provider, capability=model.capability, prices=model.prices, amount=amount, month=month, flat_cost=flat_cost,
    )


@dataclass(frozen=True, slots=True)
class Admission:
    reservation: Reservation
    rate: RateWindow


async def admit(caller: Caller, model, *, request_id: str, input_tokens: int, max_output_tokens: int,
                byok: bool = False) -> Admission:
    """Rate and spend for a call whose models have passed check_model."""
    if settings.REDIS_URL:
        rate = await sync_to_async(check_rate, thread_sensitive=False)(caller)  # a network round trip
    else:
        rate = check_rate(caller)  # process memory: cheaper than a thread hop
    reservation = await reserve_spend(caller, model, request_id=request_id, input_tokens=input_tokens,
                                      max_output_tokens=max_output_tokens, byok=byok)
    return Admission(reservation, rate)


def release_abandoned(done: asyncio.Future, request_id: str, tenant_id: int, amount: Decimal) -> None:
    if not done.cancelled() and done.exception() is None and done.result() is not None:
        writer.submit(recording.release, Reservation(
            request_id=request_id, tenant_id=tenant_id, api_key_id=None, model="", provider="", capability="",
            prices=None, amount=amount, month=done.result()))
