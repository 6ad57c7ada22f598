"""How much a request may cost before it is called, and its admission on that: the sizing of a
chat reservation (the prompt's bound, the output asked for, the priciest model a fallback chain
may reach, a web search's price, a tool loop's model calls and tools). The serving layer decides
nothing of money; it brings the request's measures here (entitlements.admit and admit_media take
them from there)."""

from dataclasses import dataclass
from decimal import Decimal

from billing import entitlements, rate_limits
from billing.entitlements import TOKENS_PER_MESSAGE, Admission, Caller
from billing.models import Plan
from billing.refusals import spend_cap_refusal
from providers import tracing
from providers.pricing import most_cost
from usage.recording import Reservation


@dataclass(frozen=True, slots=True)
class ToolLoopSize:
    """The measures of a tool loop (gateway.serving.tool_loop): the most model calls it makes, the
    most tool calls in all, the most one tool result adds to a prompt, and what a tool call can be
    (a page read; code run for at most ``code_seconds``)."""

    model_calls: int = 1
    tool_calls: int = 0
    result_bytes: int = 0  # UTF-8 bytes: never fewer than the tokens they make
    fetches: bool = False
    code_seconds: Decimal = Decimal(0)  # 0: no code runs


NO_TOOLS = ToolLoopSize()


def most_tool_cost(plan: Plan, loop: ToolLoopSize) -> Decimal:
    """Every tool call the dearest one: a page read, or code run for the whole time allowed."""
    fetch = plan.web_fetch_price if loop.fetches else Decimal(0)
    return loop.tool_calls * max(fetch, loop.code_seconds * plan.code_second_price)


def loop_tokens(model, prompt_tokens: int, requested_output: int | None, loop: ToolLoopSize) -> tuple[int, int]:
    """The most input and output tokens of a request's model calls on ``model``: every call's
    prompt is the request's, and a later call's also holds every tool result and the output of
    every call before it (the call's own tool requests among it)."""
    output = requested_output or model.max_output_tokens
    calls = loop.model_calls
    results = loop.tool_calls * (loop.result_bytes + TOKENS_PER_MESSAGE)
    prompts = calls * prompt_tokens + (calls - 1) * results + calls * (calls - 1) // 2 * output
    return prompts, calls * output


async def admit_chat(caller: Caller, model, *, request_id: str, requested_output: int | None, prompt_bytes: int,
                     messages: int = 1, images: int = 0, alternatives=(), byok: bool = False,
                     search_price: Decimal = Decimal(0), loop: ToolLoopSize = NO_TOOLS,
                     end_user: str = "") -> Admission:
    """Admit a chat request. ``requested_output`` is the most output the provider may be sent
    (None: the model's maximum); with fallbacks, the reservation covers the most the priciest
    model of the chain could cost; with a web search, its price too; with the gateway's tools,
    every model call of the loop and the most its tools can cost at the plan's prices.
    ``end_user``: who the request is for (their budget applies)."""
    prompt_tokens = entitlements.most_input_tokens(prompt_bytes, messages=messages, images=images)

    def most_of(candidate) -> Decimal:
        input_tokens, output_tokens = loop_tokens(candidate, prompt_tokens, requested_output, loop)
        return most_cost(candidate.prices, input_tokens=input_tokens, max_output_tokens=output_tokens)

    priciest = max([model, *alternatives], key=most_of)
    input_tokens, output_tokens = loop_tokens(priciest, prompt_tokens, requested_output, loop)
    with tracing.span("admit", model=priciest.public_id):
        return await entitlements.admit(
            caller, priciest, request_id=request_id, input_tokens=input_tokens, max_output_tokens=output_tokens,
            byok=byok, search_price=search_price, most_tool_cost=most_tool_cost(caller.plan, loop),
            end_user=end_user,
        )


async def admit_media(caller: Caller, model, *, request_id: str, most, end_user: str = "") -> Admission:
    """Media admission: ``most`` is the most the request can make (and so cost)."""
    with tracing.span("admit", model=model.public_id):
        return await entitlements.admit_media(caller, model, request_id=request_id, most=most, end_user=end_user)


async def admit_cache_hit(caller: Caller, model, *, request_id: str, end_user: str = "") -> Admission:
    """A request the gateway's cache answers: the request rate as any request, then the plan's
    cache price (Plan.cache_hit_price, whatever the answer's size) held against the spend cap
    and billed as the request's cost."""
    with tracing.span("admit", model=model.public_id):
        rate = await rate_limits.check_requests(caller)  # no tokens of a provider's, and over at once
        price = caller.plan.cache_hit_price
        reservation = Reservation(
            request_id=request_id, tenant_id=caller.tenant_id, api_key_id=caller.key_id, model=model.public_id,
            provider=model.provider, capability=model.capability, prices=model.prices, amount=price, month=None,
            known_cost=price, end_user=end_user)
        async with entitlements.within_spend_limits(caller, reservation):
            if not await entitlements.reserve_under_cap(caller, reservation):
                raise spend_cap_refusal(caller, costs=f"a cached answer costs ${price}")
        return Admission(reservation, rate)
