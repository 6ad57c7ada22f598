"""A chat call's outcome in the client's protocol, for every chat endpoint: a whole answer as
JSON (``encode_answer(result, served model id)``), a stream as server-sent events from the
protocol's ``StreamEncoder`` (``stream_encoder(served model id, input token estimate)``)."""

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from django.http import HttpResponse, StreamingHttpResponse

from gateway.serving.call import Outcome
from gateway.serving.streams import ChatStream, Closing, Failed, Settled
from gateway.v1 import sse
from gateway.v1.errors import GatewayError, as_gateway_error
from gateway.v1.json_out import json_response
from providers.errors import ProviderError
from providers.types import ChatResult, Delta, Finish, Usage


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


def answer(outcome: Outcome, *, encode_answer: Callable[[ChatResult, str], dict[str, Any]],
           stream_encoder: Callable[[str, int], StreamEncoder]) -> HttpResponse:
    """The outcome of serve_chat in the client's protocol: JSON, or server-sent events."""
    if outcome.stream is None:
        return json_response(encode_answer(outcome.result, outcome.served_model))
    encoder = stream_encoder(outcome.served_model, outcome.meter.input_estimate)
    return StreamingHttpResponse(EncodedStream(outcome.stream, encoder), content_type="text/event-stream",
                                 headers=sse.HEADERS)


def failure_of(event: Failed) -> GatewayError:
    """A stream's failure as the client's error event."""
    if isinstance(event.error, ProviderError):
        return as_gateway_error(event.error)
    return GatewayError(500, f"The gateway failed on this stream ({event.request_id}); the answer is incomplete.",
                        type="server_error", code="internal_error")


class EncodedStream:
    """A ChatStream as bytes. Django calls ``close()`` when the response ends, also one whose
    body was never iterated: the stream's meter then settles as the client's leaving."""

    def __init__(self, stream: ChatStream, encoder: StreamEncoder):
        self.stream = stream
        self.encoder = encoder

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.encoded()

    async def encoded(self) -> AsyncIterator[bytes]:
        encoder = self.encoder
        yield encoder.opening()
        async for event in self.stream:
            if isinstance(event, Delta):
                chunk = encoder.delta(event)
            elif isinstance(event, Finish):
                chunk = encoder.finish(event.reason)
            elif isinstance(event, Closing):
                chunk = encoder.closing(event.usage)
            elif isinstance(event, Settled):
                chunk = encoder.done()
            else:
                chunk = encoder.failure(failure_of(event))
            if chunk:
                yield chunk

    def close(self) -> None:
        self.stream.close()
