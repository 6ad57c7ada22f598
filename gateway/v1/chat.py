"""POST /v1/chat/completions: the request path, top to bottom.

key -> decode -> model -> admission (reservation) -> router -> encode -> settle (exactly once).
Everything after decode is ``serve_chat``, shared with the other chat protocols (/v1/messages):
each brings its decoded ChatRequest, how to encode an answer and a ``StreamEncoder``.

A streamed answer starts only after the provider's first event, so a provider that fails
before producing anything still gets a proper HTTP status (and the router can retry). After
that, a failure ends the stream with an error event, never with a clean finish.
"""

import asyncio
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from billing import entitlements
from gateway.v1 import media_chat, openai_chat, openai_chat_answer, sse, web_search
from gateway.v1.admission import (
    admit_request,
    authenticated_caller,
    byok_chain,
    fallback_chain,
    find_model,
    read_json,
)
from gateway.v1.errors import (
    GatewayError,
    api_view,
    as_gateway_error,
    log_provider_error,
)
from gateway.v1.metering import Meter, estimate_input_tokens, metered, served_by, settle_abandoned
from providers import arguments, router
from providers.errors import ProviderError, ProviderStreamBroken
from providers.types import ChatRequest, ChatResult, Delta, Finish, StreamEvent, Usage, UsageReport

log = logging.getLogger(__name__)


def prompt_size(chat: ChatRequest) -> tuple[int, int]:
    """UTF-8 bytes of everything the prompt sends, and its image count. Byte-level tokenizers
    never make more tokens than bytes, so this bounds the input tokens from above."""
    size = images = 0
    for message in chat.messages:
        size += len(message.text().encode()) + len((message.reasoning or "").encode())
        size += sum(len(call.arguments.encode()) + len(call.name) for call in message.tool_calls)
        if isinstance(message.content, list):
            images += sum(1 for part in message.content if part.type == "image_url")
    for extra in (chat.tools, chat.response_format):
        if extra:
            size += len(json.dumps(extra).encode())
    return size, images


class StreamEncoder(Protocol):
    """One streamed answer in a client protocol's wire format: each method returns the bytes to
    send (b"" for none). ``closing`` comes before settlement, ``done`` (the terminal event)
    after it: a client that has seen the end of the stream has its usage recorded."""

    def opening(self) -> bytes: ...
    def delta(self, delta: Delta) -> bytes: ...
    def finish(self, reason: str) -> bytes: ...
    def closing(self, usage: Usage) -> bytes: ...
    def done(self) -> bytes: ...
    def failure(self, error: GatewayError) -> bytes: ...


@api_view
async def chat_completions(request):
    started = time.monotonic()
    caller = await authenticated_caller(request, method="POST")
    chat = openai_chat.decode(read_json(request))
    completion_id = f"chatcmpl-{request.request_id[4:]}"
    if serve_media := media_chat.media_route(chat.model):  # image/<model>: a media model in chat
        return await serve_media(request, caller, chat, started=started, completion_id=completion_id)
    return await serve_chat(
        request, caller, chat, started=started,
        encode_answer=lambda result, model: openai_chat_answer.encode_completion(
            result, completion_id=completion_id, model=model, legacy_functions=chat.legacy_functions),
        stream_encoder=lambda model, input_estimate: openai_chat_answer.OpenAIStream(
            openai_chat_answer.ChunkEncoder(completion_id=completion_id, model=model,
                                            include_usage=chat.include_usage,
                                            legacy_functions=chat.legacy_functions)),
    )


async def serve_chat(request, caller: entitlements.Caller, chat: ChatRequest, *, started: float,
                     encode_answer: Callable[[ChatResult, str], dict[str, Any]],
                     stream_encoder: Callable[[str, int], StreamEncoder],
                     on_complete: Callable[[], Awaitable[None]] | None = None) -> HttpResponse:
    """Everything after decoding: model, plan, admission, the router, settlement. The answer is
    ``encode_answer(result, served model id)``; a stream is ``stream_encoder(served model id,
    input token estimate)``'s events. ``on_complete()`` is awaited once the answer is whole and
    settled, before its end reaches the client (the JSON, or the stream's terminal event)."""
    model, deployments = await find_model(chat.model, capability="chat")
    entitlements.check_model(caller, model)  # before the features: say nothing of models off the plan
    within_model_output(chat, model)
    router.check_features(chat, model)
    own_key = byok_chain(request, caller, model, deployments)
    chain = arguments.honouring(chat, model, own_key or await fallback_chain(caller, chat, deployments))
    search = await web_search.plan_search(request, caller, chat)
    size, images = prompt_size(chat)
    if search:
        request.gateway_headers["x-tollgate-search-provider"] = search.provider
    reservation = await admit_request(request, caller, model, requested_output=chat.output_limit(),
                                      prompt_bytes=size + web_search.most_context_bytes(chat),
                                      messages=len(chat.messages) + bool(search), images=images,
                                      alternatives=[d.model for d in chain.deployments[1:]], byok=own_key is not None,
                                      search_price=search.price if search else Decimal(0))
    meter = Meter(reservation, started=started, streamed=chat.stream,
                  input_estimate=estimate_input_tokens(size, images))
    meter.served_by(model)
    trace = router.Trace()
    grounding = await ground_request(chat, search, meter) if search else None
    if chat.stream:
        return await start_stream(request, chat, chain, meter, trace, stream_encoder, grounding, on_complete)
    async with metered(request, meter, trace):
        result = await router.complete_chain(chat, chain, trace)
        if grounding:
            grounding.cite(result)
        meter.answered(result)
    result.usage = meter.final_usage()  # the estimate, when the provider's usage was unreadable
    body = encode_answer(result, trace.model.public_id)
    if on_complete is not None:
        await on_complete()
    return JsonResponse(body)


def within_model_output(chat: ChatRequest, model: router.ModelInfo) -> None:
    """A ceiling max_tokens (ChatRequest.output_is_ceiling) above the model's most is lowered to it,
    and a thinking budget with it, so it stays under max_tokens as Anthropic requires."""
    limit = model.max_output_tokens
    if not chat.output_is_ceiling or chat.max_output_tokens is None or chat.max_output_tokens <= limit:
        return
    chat.max_output_tokens = limit
    if chat.thinking_budget is not None and chat.thinking_budget >= limit:
        chat.thinking_budget = limit // 2


async def ground_request(chat: ChatRequest, search: web_search.SearchPlan, meter: Meter) -> web_search.Grounding:
    """Search and ground the request; a failed search settles the request (no search billed) and
    ends it with the search provider's error."""
    try:
        grounding = await web_search.ground(chat, search)
    except BaseException as error:
        meter.ended_by(error)
        await meter.settle()
        raise
    meter.searched()
    meter.input_estimate = estimate_input_tokens(*prompt_size(chat))
    return grounding


async def start_stream(request, chat: ChatRequest, chain: router.Chain, meter: Meter, trace: router.Trace,
                       stream_encoder: Callable[[str, int], StreamEncoder],
                       grounding: web_search.Grounding | None = None,
                       on_complete: Callable[[], Awaitable[None]] | None = None) -> StreamingHttpResponse:
    request.meter, meter.trace = meter, trace  # for the request's log line and metrics (request_log)
    events = router.stream_chain(chat, chain, trace)
    if grounding:
        events = grounding.cite_stream(events)
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    except BaseException as error:
        meter.ended_by(error)
        meter.served_by(trace.model, upstream_model=trace.upstream_model)  # the one tried, before settling
        meter.start_settling()
        await events.aclose()
        await meter.settle()
        raise
    finally:
        meter.served_by(trace.model, upstream_model=trace.upstream_model)
        served_by(request, trace)
    encoder = stream_encoder(trace.model.public_id, meter.input_estimate)
    body = relay(first, events, encoder, meter, on_complete)
    # Safety net: if the response is dropped before its first iteration (the client left in
    # that instant), the generator's finally never runs; settle from here instead.
    weakref.finalize(body, settle_abandoned, meter, asyncio.get_running_loop())
    return StreamingHttpResponse(body, content_type="text/event-stream", headers=sse.HEADERS)


async def relay(first: StreamEvent | None, events: AsyncIterator[StreamEvent], encoder: StreamEncoder,
                meter: Meter, on_complete: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[bytes]:
    finished = False
    try:
        yield encoder.opening()
        event = first
        while event is not None:
            if isinstance(event, Delta):
                meter.produced(event)
                if chunk := encoder.delta(event):
                    yield chunk
            elif isinstance(event, Finish):
                finished = meter.finished = True
                if chunk := encoder.finish(event.reason):
                    yield chunk
            elif isinstance(event, UsageReport):
                meter.settlement.usage = event.usage
            event = await anext(events, None)
        if not finished:
            raise ProviderStreamBroken(f"{meter.reservation.provider} ended the stream without finishing.",
                                       provider=meter.reservation.provider)
        if chunk := encoder.closing(meter.final_usage()):
            yield chunk
        # Settled before the last event: once a client has seen the end, its usage is recorded.
        await meter.settle()
        if on_complete is not None:
            await on_complete()
        yield encoder.done()
    except ProviderError as error:
        log_provider_error(error, meter.reservation.request_id)
        meter.failed(error)
        await meter.settle()
        yield encoder.failure(as_gateway_error(error))
    except (asyncio.CancelledError, GeneratorExit):
        meter.client_gone()
        raise
    except Exception:
        log.exception("stream of request %s failed in the gateway", meter.reservation.request_id)
        meter.failed_internally()
        await meter.settle()
        yield encoder.failure(GatewayError(
            500, f"The gateway failed on this stream ({meter.reservation.request_id}); the answer is incomplete.",
            type="server_error", code="internal_error"))
    finally:
        meter.start_settling()  # before anything else can be interrupted
        await events.aclose()
        await meter.settle()
