"""Admission: is this request allowed on the tenant's plan, and can the tenant afford it?

Checked before any provider is called, in this order:
    1. check_model: model and capability on the plan and the key's allow-list  -> 403
       (the endpoint's first check, for every model of its chain, before it says
       anything else about the model)
    2. admit: the key's rate limits: requests and tokens per minute, requests
       in flight (billing.rate_limits; settled by the meter's exit)             -> 429 + Retry-After
    3. admit: the budgets of the request's key and end user and a prepaid tenant's
       credits (billing.spend_limits), then the monthly spend cap, each holding the most
       the request can cost                                                     -> 429 insufficient_quota
       (the cap against this process's budget lease: usage.budget, usage.leases)
The reservation is replaced by the actual cost at settlement (usage.recording, usage.batches).

Media requests (images, video, speech, transcription) go through admit_media instead of 3:
the plan's largest image / tallest video (403), then the spend cap and the plan's monthly unit
limits (images, seconds of video, characters, minutes of audio) in one atomic reservation of
the most the request can make and cost (429 insufficient_quota). Settling the actual usage
gives the rest back; a failed or cancelled job settles zero units and costs nothing.
"""

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from fnmatch import fnmatchcase

from billing import rate_limits, spend_limits
from billing.models import Plan
from billing.rate_limits import RateHold
from billing.refusals import DO_NOT_RETRY, Refusal, spend_cap_refusal, upgrade_hint
from providers import catalog_snapshot
from providers.pricing import ToolPrices, cost_of, most_cost
from providers.types import Usage
from usage import budget, recording
from usage.recording import Reservation
from usage.writer import writer


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the parts of an authenticated key admission needs."""

    tenant_id: int
    tenant_slug: str
    key_id: int | None  # None: the dashboard's playground, called as a member without a key
    key_name: str
    key_allowed_models: tuple[str, ...]
    plan: Plan
    provider_keys: dict[str, str] = field(default_factory=dict)  # the tenant's own keys, by provider slug
    # The gateway's URL as this caller reaches it (no trailing slash), for links in refusals. The
    # HTTP edge sets it (billing never reads a request); "" (the playground) leaves them relative.
    base_url: str = ""
    # The key's own rate limits (None: the plan's alone); of the key's and the plan's, the lower applies.
    key_tokens_per_minute: int | None = None
    key_max_concurrent_requests: int | None = None


def is_on_plan(plan: Plan, model) -> bool:
    """The plan takes the model's capability, and the model by id or group: the one rule."""
    return plan.allows_capability(model.capability) and plan.allows_model(model.public_id, model.group)


def models_on_plan(plan: Plan) -> list:
    """The models a request on ``plan`` may name: those a deployment can serve (as /v1/models)."""
    catalog = catalog_snapshot.load_catalog()
    return sorted((model for model in catalog.models.values() if is_on_plan(plan, model)),
                  key=lambda model: model.public_id)


def is_model_allowed(caller: Caller, model) -> bool:
    """On the plan (capability, and model id or group) and on the key's own allow-list."""
    if not is_on_plan(caller.plan, model):
        return False
    allowed = caller.key_allowed_models
    return not allowed or any(fnmatchcase(model.public_id, pattern) for pattern in allowed)


def check_model(caller: Caller, model) -> None:
    """is_model_allowed, as a Refusal that says which rule refused and what to do."""
    plan = caller.plan
    if not plan.allows_capability(model.capability):
        raise Refusal(403, f"{model.capability} models are not on plan {plan.name}; {upgrade_hint(caller)}.",
                      type="permission_error", code="capability_not_on_plan")
    if not plan.allows_model(model.public_id, model.group):
        raise Refusal(403, f"model '{model.public_id}' is not on plan {plan.name}; {upgrade_hint(caller)}. "
                      "GET /v1/models lists the models your plan includes.",
                      type="permission_error", code="model_not_on_plan")
    allowed = caller.key_allowed_models
    if allowed and not any(fnmatchcase(model.public_id, pattern) for pattern in allowed):
        raise Refusal(403, f"API key '{caller.key_name}' may not use model '{model.public_id}'; it is limited "
                      f"to {', '.join(allowed)}.", type="permission_error", code="model_not_allowed_for_key")


# Per message, the chat template's role and separator tokens; per image, the most any provider
# in the catalog counts for one (high-detail tiles on gpt-4.1-mini-class models).
TOKENS_PER_MESSAGE = 8
TOKENS_PER_IMAGE = 2500


def most_input_tokens(prompt_bytes: int, *, messages: int, images: int) -> int:
    """An upper bound on prompt tokens without a tokenizer: byte-level BPE never makes more
    tokens than UTF-8 bytes."""
    return prompt_bytes + messages * TOKENS_PER_MESSAGE + images * TOKENS_PER_IMAGE


def could_cost(amount: Decimal) -> str:
    return f"this request could cost up to ${amount.quantize(Decimal('0.000001'))}"


def tool_prices(plan: Plan) -> ToolPrices:
    """The plan's prices of the gateway's own tools (web_fetch, code_interpreter)."""
    return ToolPrices(per_web_fetch=plan.web_fetch_price, per_code_second=plan.code_second_price)


@asynccontextmanager
async def within_spend_limits(caller: Caller, reservation: Reservation):
    """Hold the reservation on the budgets and credits that apply (billing.spend_limits; 429
    insufficient_quota naming the limit), for the body (the cap's reservation) to follow: if the
    body raises (the cap refused, the client left), the holds go back."""
    try:
        await spend_limits.hold(caller, reservation)
    except spend_limits.OverLimit as over:
        raise refusal_of(over) from None
    try:
        yield
    except BaseException:
        spend_limits.release(reservation)
        raise


def refusal_of(over: spend_limits.OverLimit) -> Refusal:
    return Refusal(429, over.message, type="insufficient_quota", code="insufficient_quota",
                   retry_after=over.retry_after, headers=over.headers)


async def reserve_under_cap(caller: Caller, reservation: Reservation) -> bool:
    """The request's place in its tenant's month: against this process's budget lease, under the
    plan's cap; past the cap, on a plan with credit_overage, paid from the tenant's credits (held
    on them, and reserved on the month's ledger without the cap; a 429 naming the credits when
    they do not cover it). False: the cap refuses it."""
    if await budget.reserve(reservation, caller.plan.monthly_spend_limit):
        return True
    if not caller.plan.credit_overage:
        return False
    try:
        await spend_limits.hold_credits(caller, reservation)
    except spend_limits.OverLimit as over:
        raise refusal_of(over) from None
    who = (caller.key_id, reservation.model, reservation.provider, reservation.capability)
    reservation.month = await writer.run(recording.reserve, reservation.request_id, caller.tenant_id,
                                         reservation.amount, None, who)
    return True


async def reserve_spend(caller: Caller, model, *, request_id: str, input_tokens: int,
                        max_output_tokens: int, byok: bool = False, search_price: Decimal = Decimal(0),
                        most_tool_cost: Decimal = Decimal(0), end_user: str = "") -> Reservation:
    """``search_price``: the request makes one web search at this price (gateway.serving.web_search);
    ``most_tool_cost``: the most its gateway tools can cost at the plan's prices (billing.admission);
    ``end_user``: who it is for (their budget applies). Held on the key's and end user's budgets and
    a prepaid tenant's credits, then against this process's budget lease of the tenant's month
    (usage.budget): far from the cap, and with no such budget, no database round trip."""
    flat_cost = caller.plan.byok_fee_per_request if byok else None
    amount = flat_cost if byok else most_cost(model.prices, input_tokens=input_tokens,
                                               max_output_tokens=max_output_tokens)
    amount += search_price + most_tool_cost
    reservation = Reservation(
        request_id=request_id, tenant_id=caller.tenant_id, api_key_id=caller.key_id, model=model.public_id,
        provider=model.provider, capability=model.capability, prices=model.prices, amount=amount, month=None,
        flat_cost=flat_cost, search_price=search_price, tool_prices=tool_prices(caller.plan), end_user=end_user,
    )
    async with within_spend_limits(caller, reservation):
        if not await reserve_under_cap(caller, reservation):
            raise spend_cap_refusal(caller, costs=could_cost(amount), advice="Lower max_tokens")
    return reservation


@dataclass(frozen=True, slots=True)
class Admission:
    reservation: Reservation
    rate: RateHold  # the key's rate limits, also on the reservation (settled with it)


async def admit(caller: Caller, model, *, request_id: str, input_tokens: int, max_output_tokens: int,
                byok: bool = False, search_price: Decimal = Decimal(0),
                most_tool_cost: Decimal = Decimal(0), end_user: str = "") -> Admission:
    """Rate and spend for a call whose models have passed check_model."""
    rate = await rate_limits.admit_rates(caller, tokens=input_tokens + max_output_tokens)
    async with rate_limits.settled_if_refused(rate):
        reservation = await reserve_spend(caller, model, request_id=request_id, input_tokens=input_tokens,
                                          max_output_tokens=max_output_tokens, byok=byok, search_price=search_price,
                                          most_tool_cost=most_tool_cost, end_user=end_user)
    reservation.rate_hold = rate
    return Admission(reservation, rate)


# Media: the plan's monthly limit of each unit (usage.recording.MEDIA_UNITS), and how to name it.
MEDIA_LIMIT_NAMES = {
    "images": ("image", "images"),
    "video_seconds": ("video", "seconds of video"),
    "characters": ("speech", "characters of speech"),
    "audio_seconds": ("transcription", "seconds of audio transcribed"),
}


def media_limits(plan: Plan) -> dict[str, int | None]:
    """The most of each media unit the plan allows per month (None = no limit)."""
    minutes = plan.transcription_minutes_per_month
    return {"images": plan.images_per_month, "video_seconds": plan.video_seconds_per_month,
            "characters": plan.speech_characters_per_month,
            "audio_seconds": None if minutes is None else minutes * 60}


def dimensions_of(detail: str) -> tuple[int, int] | None:
    """Width and height from a media detail ("1024x1792/hd" -> (1024, 1792)), if it names them;
    a "2K"-style image size is that many 1024-pixel sides, and the larger reading wins."""
    sizes = []
    for part in detail.split("/"):
        width, x, height = part.partition("x")
        if x and width.isdigit() and height.isdigit():
            sizes.append((int(width), int(height)))
        elif part.endswith("K") and part[:-1].isdigit():
            sizes.append((int(part[:-1]) * 1024, int(part[:-1]) * 1024))
    return max(sizes, key=lambda size: size[0] * size[1], default=None)


def lines_of(detail: str) -> int | None:
    """A video's lines from its detail: "720p" -> 720, "1280x720" -> 720 (the shorter side)."""
    size = dimensions_of(detail)
    if size is not None:
        return min(size)
    for part in detail.split("/"):
        if part.endswith("p") and part[:-1].isdigit():
            return int(part[:-1])
    return None


def check_media_size(caller: Caller, model, detail: str) -> None:
    """The plan's largest image (pixels) and tallest video (lines), read from the detail the
    request will be priced at ("1792x1024/hd", "1080p"); a detail naming no size passes."""
    plan = caller.plan
    if model.capability == "image" and plan.max_image_pixels is not None:
        size = dimensions_of(detail)
        if size is not None and size[0] * size[1] > plan.max_image_pixels:
            raise Refusal(403, f"Images of {size[0]}x{size[1]} are larger than plan {plan.name} allows "
                          f"({plan.max_image_pixels} pixels at most, e.g. 1024x1024 = 1048576). Ask for a smaller "
                          f"size, or {upgrade_hint(caller)}.", type="permission_error", code="image_size_not_on_plan")
    if model.capability == "video" and plan.max_video_resolution is not None:
        lines = lines_of(detail)
        if lines is not None and lines > plan.max_video_resolution:
            raise Refusal(403, f"Video at {lines}p is more than plan {plan.name} allows "
                          f"({plan.max_video_resolution}p at most). Ask for a lower resolution, or {upgrade_hint(caller)}.",
                          type="permission_error", code="video_resolution_not_on_plan")


def media_refusal(caller: Caller, reached: recording.LimitReached, amount: Decimal, most: Usage) -> Refusal:
    plan = caller.plan
    if reached.limit == "spend":
        return spend_cap_refusal(caller, costs=could_cost(amount), advice="Ask for fewer or smaller outputs")
    kind, units = MEDIA_LIMIT_NAMES[reached.limit]
    limit = media_limits(plan)[reached.limit]
    return Refusal(429, f"Monthly {kind} limit reached: plan {plan.name} includes {limit} {units} per month, "
                   f"{reached.used.normalize():f} are used or in progress, and this request could use up to "
                   f"{getattr(most, reached.limit)}. Ask for less, wait for next month, or {upgrade_hint(caller)}.",
                   type="insufficient_quota", code="media_limit_exceeded", headers=DO_NOT_RETRY)


async def admit_media(caller: Caller, model, *, request_id: str, most: Usage, end_user: str = "") -> Admission:
    """Admission for a media call whose model has passed check_model (and whose parameters the
    model accepts): the plan's largest size (403), the key's rate limits (429), then the most the
    request can make and cost (``most``: images, video_seconds, characters, audio_seconds,
    media_detail, and tokens for token-priced models) reserved atomically against the spend cap
    and the plan's monthly unit limits (429 insufficient_quota; hard under concurrency).

    Settle the Meter of the returned reservation with the actual usage: the units made (zero
    for a failed or cancelled job) replace the units reserved, and the actual cost the amount.
    The key's and ``end_user``'s budgets and a prepaid tenant's credits are held first."""
    check_media_size(caller, model, most.media_detail)
    rate = await rate_limits.admit_rates(caller, tokens=most.input_tokens + most.output_tokens)
    amount = cost_of(model.prices, most)
    units = Usage(images=most.images, video_seconds=most.video_seconds, characters=most.characters,
                  audio_seconds=most.audio_seconds, media_detail=most.media_detail)
    reservation = Reservation(
        request_id=request_id, tenant_id=caller.tenant_id, api_key_id=caller.key_id, model=model.public_id,
        provider=model.provider, capability=model.capability, prices=model.prices, amount=amount,
        month=None, units=units, end_user=end_user, rate_hold=rate)
    async with rate_limits.settled_if_refused(rate), within_spend_limits(caller, reservation):
        pending = writer.submit(recording.reserve_media, request_id, caller.tenant_id, amount,
                                caller.plan.monthly_spend_limit, most, media_limits(caller.plan))
        try:
            reservation.month = await asyncio.shield(pending)
        except asyncio.CancelledError:
            pending.add_done_callback(lambda done: release_abandoned_media(done, reservation))
            raise
        except recording.LimitReached as reached:
            raise media_refusal(caller, reached, amount, most) from None
    return Admission(reservation, rate)


def release_abandoned_media(done: asyncio.Future, reservation: Reservation) -> None:
    if not done.cancelled() and done.exception() is None:
        reservation.month = done.result()
        writer.submit(recording.release, reservation)
