"""serve_chat: one chat call, top to bottom, for every chat protocol and the playground.

    model -> plan -> gateway tools -> [the answer cache: a hit is answered from it, gateway.serving.cache]
    -> chain -> search plan -> admission (the meter) -> async with meter:
        [search] -> router, in the tool loop when the gateway's tools are offered (gateway.serving.tool_loop)
        (the whole answer, or the stream's first event)
    -> the outcome: the result, or a ChatStream that carries the meter's open scope to its end

A streamed answer starts only after the provider's first event, so a provider that fails before
producing anything still gets a proper status (and the router can retry). After that, a failure
ends the stream with a Failed event, never with a clean finish. The stream's events are the
router's Delta and Finish, then Closing (the answer is whole: its usage) before settlement and
Settled (recorded: its cost) after it, so a client that has seen the end has its usage recorded.
"""

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from decimal import Decimal

from billing import admission, entitlements
from gateway.serving import cache, gateway_tools, tool_loop, web_search
from gateway.serving.call import Call, Outcome
from gateway.serving.chains import byok_chain, fallback_chain, find_model
from gateway.serving.errors import bad_request
from gateway.serving.gateway_tools import Toolbox
from gateway.serving.meter import Meter, estimate_input_tokens, prompt_size
from gateway.serving.streams import ChatStream, relay
from providers import arguments, router
from providers.types import ChatRequest

log = logging.getLogger(__name__)


async def serve_chat(call: Call, chat: ChatRequest, *,
                     on_complete: Callable[[], Awaitable[None]] | None = None) -> Outcome:
    """Serve ``chat`` for ``call``: its outcome holds the result, or the stream of ChatEvents.
    ``on_complete()`` is awaited once the answer is whole and settled, before a stream's last
    event (a whole answer's caller gets it after)."""
    outcome = call.outcome
    call.attribute(chat.user, chat.metadata)
    model, deployments = await find_model(chat.model, capability=chat.capability())
    entitlements.check_model(call.caller, model)  # before the features: say nothing of models off the plan
    within_model_output(chat, model)
    toolbox = gateway_tools.plan_tools(call, chat)  # the model is offered them as function tools
    router.check_features(chat, model)
    cached = await cache.look_up_chat(call, chat, model)
    if cached.hit is not None:
        return await cache.answer_chat(call, chat, model, cached, on_complete)
    own_key = byok_chain(call, model, deployments)
    chain = arguments.honouring(chat, model, own_key or await fallback_chain(call.caller, chat, deployments))
    search = await web_search.plan_search(call, chat)
    outcome.search_provider = search.provider if search else ""
    meter = await admit_chat(call, chat, model, chain, search, toolbox, byok=own_key is not None)
    async with AsyncExitStack() as scope:
        await scope.enter_async_context(meter)
        grounding = await ground_request(chat, search, meter) if search else None
        if chat.stream:
            events = tool_loop.stream(chat, chain, meter, toolbox)
            if grounding:
                events = grounding.cite_stream(events)
            scope.push_async_callback(events.aclose)  # before the meter settles, on every way out
            first = await anext(events, None)
            meter.served_by(meter.trace.model, upstream_model=meter.trace.upstream_model)
            owned = scope.pop_all()
            outcome.stream = ChatStream(relay(first, events, meter, owned, on_complete), owned)
            return await cache.keep(cached, outcome)
        result = await tool_loop.complete(chat, chain, meter, toolbox)
        if grounding:
            grounding.cite(result)
    result.usage = meter.final_usage()  # the estimate, when the provider's usage was unreadable
    outcome.result = result
    if on_complete is not None:
        await on_complete()
    return await cache.keep(cached, outcome)


def within_model_output(chat: ChatRequest, model: router.ModelInfo) -> None:
    """A ceiling max_tokens (ChatRequest.output_is_ceiling) above the model's most is lowered to it,
    and a thinking budget with it, so it stays under max_tokens as Anthropic requires; any other
    above it is refused."""
    limit = model.max_output_tokens
    if chat.output_is_ceiling and chat.max_output_tokens is not None and chat.max_output_tokens > limit:
        chat.max_output_tokens = limit
        if chat.thinking_budget is not None and chat.thinking_budget >= limit:
            chat.thinking_budget = limit // 2
    requested = chat.output_limit()
    if requested is not None and requested > limit:
        raise bad_request(f"max_tokens is too large: {requested}. '{model.public_id}' produces at most "
                          f"{limit} tokens per answer.", param="max_tokens")


async def admit_chat(call: Call, chat: ChatRequest, model: router.ModelInfo, chain: router.Chain,
                     search: web_search.SearchPlan | None, toolbox: Toolbox | None, *, byok: bool) -> Meter:
    """Admission (billing sizes the reservation from these measures), and the request's meter."""
    size, images = prompt_size(chat)
    admitted = await admission.admit_chat(
        call.caller, model, request_id=call.request_id, requested_output=chat.most_generated(),
        prompt_bytes=size + web_search.most_context_bytes(chat), messages=len(chat.messages) + bool(search),
        images=images, alternatives=[d.model for d in chain.deployments[1:]], byok=byok,
        search_price=search.price if search else Decimal(0),
        loop=gateway_tools.loop_size(toolbox) if toolbox else admission.NO_TOOLS, end_user=call.end_user)
    meter = Meter(call.admitted(admitted), started=call.started, streamed=chat.stream,
                  input_estimate=estimate_input_tokens(size, images))
    meter.served_by(model)
    call.outcome.meter, call.outcome.trace = meter, meter.trace
    return meter


async def ground_request(chat: ChatRequest, search: web_search.SearchPlan, meter: Meter) -> web_search.Grounding:
    """Search and ground the request (a failed search ends it, with no search billed)."""
    grounding = await web_search.ground(chat, search)
    meter.searched()
    meter.input_estimate = estimate_input_tokens(*prompt_size(chat))
    return grounding
