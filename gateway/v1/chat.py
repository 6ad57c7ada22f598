"""POST /v1/chat/completions: the request path, top to bottom.

key -> decode -> model -> admission (reservation) -> router -> encode -> settle (exactly once).

A streamed answer starts only after the provider's first event, so a provider that fails
before producing anything still gets a proper HTTP status (and the router can retry). After
that, a failure ends the stream with an error event, never with a clean finish.
"""

import asyncio
import time
import weakref
from collections.abc import AsyncIterator

from django.http import JsonResponse, StreamingHttpResponse

from gateway.v1 import openai_chat, sse
from gateway.v1.errors import api_view, as_gateway_error, error_body
from gateway.v1.requests import admit_request, authenticated_caller, find_model, read_body
from providers import router
from providers.errors import ProviderError, ProviderStreamBroken
from providers.types import ChatRequest, Delta, Finish, StreamEvent, Usage, UsageReport
from usage.live import publish_settled
from usage.models import Ending
from usage.recording import Reservation, Settlement, settle
from usage.writer import writer


class Meter:
    """Collects what a request really did and settles it once, whatever way it ends."""

    def __init__(self, reservation: Reservation, *, started: float, streamed: bool, input_estimate: int):
        self.reservation = reservation
        self.started = started
        self.input_estimate = input_estimate
        self.produced_chars = 0
        self.settlement = Settlement(streamed=streamed)
        self.settling: asyncio.Future | None = None

    def first_token(self) -> None:
        if self.settlement.ttft_ms is None:
            self.settlement.ttft_ms = int((time.monotonic() - self.started) * 1000)

    def failed(self, error: ProviderError, *, ending: str = Ending.UPSTREAM_ERROR) -> None:
        self.settlement.http_status = error.status
        self.settlement.error_type = error.code or error.error_type
        self.settlement.ending = Ending.TIMEOUT if error.error_type == "timeout" else ending

    def client_gone(self) -> None:
        self.settlement.ending = Ending.CLIENT_GONE
        self.settlement.http_status = 499
        self.settlement.error_type = "client_disconnected"

    def prepare(self) -> Settlement:
        settlement = self.settlement
        settlement.latency_ms = int((time.monotonic() - self.started) * 1000)
        if settlement.usage == Usage() and (self.produced_chars or settlement.ending == Ending.CLIENT_GONE):
            # The provider never reported usage (the stream was cut): count it ourselves, the
            # input from the prompt and the output from the text already produced.
            settlement.usage = Usage(input_tokens=self.input_estimate, output_tokens=(self.produced_chars + 3) // 4)
            settlement.usage_estimated = True
        return settlement

    async def settle(self) -> None:
        """Settle once; every later call waits for that one. Shielded: a second cancellation
        (client gone, server shutting down) must not lose the record half-way."""
        if self.settling is None:
            self.settling = asyncio.ensure_future(self._settle_and_publish())
        await asyncio.shield(self.settling)

    async def _settle_and_publish(self) -> None:
        record = await writer.run(settle, self.reservation, self.prepare())
        if record is not None:
            await publish_settled(record)


def prompt_chars(chat: ChatRequest) -> tuple[int, int]:
    chars = images = 0
    for message in chat.messages:
        chars += len(message.text()) + sum(len(call.arguments) + len(call.name) for call in message.tool_calls)
        if isinstance(message.content, list):
            images += sum(1 for part in message.content if part.type == "image_url")
    if chat.tools:
        chars += sum(len(str(tool)) for tool in chat.tools)
    return chars, images


@api_view
async def chat_completions(request):
    started = time.monotonic()
    caller = await authenticated_caller(request, method="POST")
    chat = openai_chat.decode(read_body(request))
    model, deployment = await find_model(chat.model, capability="chat")
    router.check_features(chat, model)
    chars, images = prompt_chars(chat)
    reservation = await admit_request(request, caller, model, requested_output=chat.max_output_tokens,
                                      prompt_chars=chars, images=images)
    meter = Meter(reservation, started=started, streamed=chat.stream, input_estimate=chars // 4)
    if chat.stream:
        return await start_stream(request, chat, deployment, meter)
    try:
        result = await router.complete(chat, deployment)
    except ProviderError as error:
        meter.failed(error)
        raise
    except asyncio.CancelledError:
        meter.client_gone()
        raise
    else:
        meter.settlement.usage = result.usage
        meter.settlement.upstream_model = result.upstream_model
    finally:
        await meter.settle()
    body = openai_chat.encode_completion(result, completion_id=f"chatcmpl-{request.request_id[4:]}",
                                        model=model.public_id)
    return JsonResponse(body)


async def start_stream(request, chat: ChatRequest, deployment, meter: Meter) -> StreamingHttpResponse:
    meter.settlement.upstream_model = deployment.model.upstream_model
    events = router.stream(chat, deployment)
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    except BaseException as error:
        if isinstance(error, ProviderError):
            meter.failed(error)
        elif isinstance(error, asyncio.CancelledError):
            meter.client_gone()
        await events.aclose()
        await meter.settle()
        raise
    encoder = openai_chat.ChunkEncoder(completion_id=f"chatcmpl-{request.request_id[4:]}",
                                       model=deployment.model.public_id, include_usage=chat.include_usage)
    body = relay(first, events, encoder, meter)
    # Safety net: if the response is dropped before its first iteration (the client left in
    # that instant), the generator's finally never runs; settle from here instead.
    weakref.finalize(body, settle_abandoned, meter, asyncio.get_running_loop())
    return StreamingHttpResponse(body, content_type="text/event-stream", headers=sse.HEADERS)


def settle_abandoned(meter: Meter, loop: asyncio.AbstractEventLoop) -> None:
    if meter.settling is None and not loop.is_closed():
        meter.client_gone()
        loop.call_soon_threadsafe(lambda: loop.create_task(meter.settle()))


async def relay(first: StreamEvent | None, events: AsyncIterator[StreamEvent],
                encoder: openai_chat.ChunkEncoder, meter: Meter) -> AsyncIterator[bytes]:
    finished = False
    try:
        yield sse.event(encoder.role())
        event = first
        while event is not None:
            if isinstance(event, Delta):
                meter.first_token()
                meter.produced_chars += len(event.content or "") + len(event.reasoning or "")
                yield sse.event(encoder.delta(event))
            elif isinstance(event, Finish):
                finished = True
                yield sse.event(encoder.finish(event.reason))
            elif isinstance(event, UsageReport):
                meter.settlement.usage = event.usage
            event = await anext(events, None)
        if not finished:
            raise ProviderStreamBroken(f"{meter.reservation.provider} ended the stream without finishing.",
                                       provider=meter.reservation.provider)
        if encoder.include_usage:
            yield sse.event(encoder.usage(meter.settlement.usage))
        # Settled before the last event: once a client has seen [DONE], its usage is recorded.
        await meter.settle()
        yield sse.DONE
    except ProviderError as error:
        meter.failed(error)
        await meter.settle()
        gateway_error = as_gateway_error(error)
        # The SDK raises APIError on a data event with an "error" key: the client learns the
        # answer is incomplete instead of seeing a clean finish.
        yield sse.event(error_body(gateway_error.message, type=gateway_error.type, code=gateway_error.code))
    except (asyncio.CancelledError, GeneratorExit):
        meter.client_gone()
        raise
    finally:
        await events.aclose()
        await meter.settle()
