"""The adapter interface: canonical request in, canonical result or events out.

An adapter translates and speaks HTTP, nothing else. It must NOT look at tenants, plans,
prices, the database or Django requests, and must NOT retry (the router does). Every vendor
failure leaves it as a providers.errors.ProviderError; an answer not in the vendor's wire format
as ProviderMalformed (providers.adapters.answers, which also reads usage leniently; should an
adapter still fail reading an answer, the router's read_answer / read_event make it malformed).
"""

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import httpx

from providers import errors
from providers.adapters.answers import malformed
from providers.embedding_types import (
    EmbeddingRequest,
    EmbeddingResult,
    ModerationRequest,
    ModerationResult,
    RerankRequest,
    RerankResult,
)
from providers.http import get_client
from providers.sse import decode_events
from providers.types import (
    ChatRequest,
    ChatResult,
    GeneratedMedia,
    ImageRequest,
    ImageResult,
    SpeechRequest,
    SpeechResult,
    StreamEvent,
    Target,
    TranscriptionRequest,
    TranscriptionResult,
    VideoJobState,
    VideoRequest,
)

# An adapter's mapping of a vendor error response (status, headers, body) to our error tree.
ErrorMapper = Callable[[int, httpx.Headers, bytes, Target], errors.ProviderError]


class Adapter:
    wire_format: str = ""
    # The sampling and output arguments this wire format sends (names of providers.arguments.
    # ARGUMENTS). Safe default: none, so a request setting one to a non-neutral value is refused
    # before any call rather than silently answered without it.
    SUPPORTED_ARGUMENTS: frozenset[str] = frozenset()

    def supported_arguments(self, target: Target) -> frozenset[str]:
        """The arguments this adapter sends to ``target``'s provider: SUPPORTED_ARGUMENTS unless a
        wire format narrows it per provider (its quirks). Must NOT call anything: it runs before
        admission, for every deployment of a chain."""
        return self.SUPPORTED_ARGUMENTS

    async def complete(self, request: ChatRequest, target: Target) -> ChatResult:
        """One non-streamed chat completion. Usage must be the provider's own count."""
        raise NotImplementedError

    def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        """An async iterator of Delta, then one Finish, then one UsageReport when the provider
        reports usage. Closing the iterator early must close the upstream connection."""
        raise NotImplementedError

    async def count_tokens(self, request: ChatRequest, target: Target) -> int | None:
        """The request's input tokens by the provider's own count, or None where the provider has
        no counting endpoint (the caller then estimates; providers.tokenizer)."""
        return None

    # Media. A wire format implements the ones its provider offers; the catalog only lists
    # models of a capability on providers whose adapter has it (the endpoints check
    # ``supports``). Each waits for the provider's answer (polling its queue where it has
    # one) within target.total_timeout, except video, which is a job the gateway polls.

    async def generate_images(self, request: ImageRequest, target: Target) -> ImageResult:
        """Images from a prompt. usage.images is the number the provider made; media_detail the
        size/quality they are priced at."""
        raise NotImplementedError

    async def edit_images(self, request: ImageRequest, target: Target) -> ImageResult:
        """Images from request.images (and request.mask) changed as the prompt says."""
        raise NotImplementedError

    async def submit_video(self, request: VideoRequest, target: Target) -> VideoJobState:
        """Start a video job; answer as soon as the provider accepted it (status queued or
        in_progress). Must NOT wait for the video."""
        raise NotImplementedError

    async def poll_video(self, state: VideoJobState, target: Target) -> VideoJobState:
        """The job's state now, from ``state.handle``. When completed, ``video`` says where the
        file is and ``usage.video_seconds`` how long it is."""
        raise NotImplementedError

    def can_cancel_video(self, state: VideoJobState) -> bool:
        """Whether the provider stops the job in ``state`` (and stops billing it) when asked: by
        default it cannot. The gateway refuses a client's cancel it could not pass on, since the
        provider would go on and bill the job."""
        return False

    async def cancel_video(self, state: VideoJobState, target: Target) -> None:
        """Ask the provider to stop the job, where it can (can_cancel_video); by default a no-op."""

    async def speech(self, request: SpeechRequest, target: Target) -> SpeechResult:
        """Audio for request.input; usage.characters is its length."""
        raise NotImplementedError

    async def transcribe(self, request: TranscriptionRequest, target: Target) -> TranscriptionResult:
        """Text from request.file; usage.audio_seconds is the audio's duration."""
        raise NotImplementedError

    async def fetch_media(self, media: GeneratedMedia, target: Target) -> bytes:
        """The bytes of a generated file: inline, or downloaded from its URL. Adapters whose
        file URLs need the provider's key override this."""
        if media.content is not None:
            return media.content
        return await download(media.url or "", target)

    # Retrieval: embeddings, rerank, moderation (providers.embedding_types). Each has an explicit
    # flag, False unless the wire format offers it; for a family of hosts (the OpenAI-compatible one)
    # the flag reads the provider's declared quirks, so it takes the target. The endpoints check the
    # flag before admission, for the deployment they would call; calling the method on a target whose
    # flag is False is a programming error (NotImplementedError).

    def can_embed(self, target: Target) -> bool:
        """Whether ``target``'s provider embeds text through this adapter."""
        return False

    async def embed(self, request: EmbeddingRequest, target: Target) -> EmbeddingResult:
        """One vector per input, in the request's order. Inputs beyond the provider's per-call limit
        are split into several calls and put back together in order, their usage summed; a call the
        provider reports no token count for is counted locally (providers.tokenizer) and the result
        flagged usage_estimated. Must NOT send ``dimensions`` or ``input_type`` a provider has no
        field for: dimensions are checked against the catalog before admission
        (embedding_types.check_embedding_options); an input the provider cannot take (token arrays
        outside the OpenAI-shaped hosts) raises UnsupportedFeature before any call."""
        raise NotImplementedError

    def can_rerank(self, target: Target) -> bool:
        """Whether ``target``'s provider reranks documents through this adapter."""
        return False

    async def rerank(self, request: RerankRequest, target: Target) -> RerankResult:
        """The documents ranked by relevance to the query, most relevant first, at most top_n, each
        hit the document's index (and the request's own document when asked for: never the
        provider's copy). Usage as the provider bills: search units or input tokens."""
        raise NotImplementedError

    def can_moderate(self, target: Target) -> bool:
        """Whether ``target``'s provider classifies content (OpenAI's moderation shape)."""
        return False

    async def moderate(self, request: ModerationRequest, target: Target) -> ModerationResult:
        """One verdict per input (one for a multimodal input), in OpenAI's shape with the category
        names as the provider sent them. Usage is a local count (no moderation API reports one)."""
        raise NotImplementedError

    def supports(self, operation: str) -> bool:
        """Whether this adapter implements ``operation`` (a method name above)."""
        return getattr(type(self), operation) is not getattr(Adapter, operation)


def timeout_for(target: Target) -> httpx.Timeout:
    """httpx's part of the timeouts: connecting, and any single read up to the first byte's limit
    (a non-streamed answer arrives whole, after the model is done). The silence allowed between
    stream chunks, shorter, is the router's to enforce per event."""
    return httpx.Timeout(connect=target.connect_timeout, read=target.first_byte_timeout,
                         write=target.read_timeout, pool=target.connect_timeout)


def json_request(method: str, url: str, target: Target, *, body: dict | None = None,
                 headers: dict[str, str] | None = None, params: dict | None = None, scheme: str = "Bearer",
                 ensure_ascii: bool = True) -> httpx.Request:
    """A prepared request to a provider's JSON API: the key as ``Authorization: <scheme> <key>``,
    ``body`` (when given) as JSON, the target's timeouts."""
    headers = {"Authorization": f"{scheme} {target.api_key}", "Accept": "application/json", **(headers or {})}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return httpx.Request(method, url, headers=headers, params=params,
                         content=json.dumps(body, ensure_ascii=ensure_ascii).encode() if body is not None else None,
                         extensions={"timeout": timeout_for(target).as_dict()})


def transport_error(exc: httpx.TransportError, target: Target) -> errors.ProviderError:
    """An httpx transport failure as the gateway's own error (all retryable before output)."""
    if isinstance(exc, httpx.TimeoutException):
        return errors.ProviderTimeout(
            f"{target.provider} did not answer in time ({type(exc).__name__}).", provider=target.provider
        )
    return errors.ProviderUnavailable(
        f"Could not reach {target.provider}: {type(exc).__name__}.", provider=target.provider
    )


def stream_failure(message: str, target: Target, *, produced: bool) -> errors.ProviderError:
    """A stream that failed: after output began it is broken (final); before any output the
    call may simply be retried."""
    if produced:
        return errors.ProviderStreamBroken(message, provider=target.provider)
    return errors.ProviderUnavailable(message, provider=target.provider)


def stream_transport_error(exc: httpx.TransportError, target: Target, *, produced: bool) -> errors.ProviderError:
    """The connection failed during a stream: broken once output began, else as any transport error."""
    if produced:
        return errors.ProviderStreamBroken(
            f"{target.provider} dropped the stream part-way ({type(exc).__name__}).", provider=target.provider)
    return transport_error(exc, target)


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds form only)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


def redacted_message(body: bytes, target: Target, message_of: Callable[[Any], str]) -> str:
    """The vendor's message in an error body (``message_of`` reads it from the parsed JSON, or from
    None when the body is not JSON), else the body's start; our key, should it be quoted, redacted."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    message = message_of(payload) or body[:200].decode(errors="replace").strip() or "no message"
    if target.api_key:
        message = message.replace(target.api_key, "[redacted]")
    return message


def error_for_status(status: int, headers: httpx.Headers, message: str, target: Target, *, auth_hint: str,
                     not_found: str | None = None,
                     auth_statuses: tuple[int, ...] = (401, 402, 403)) -> errors.ProviderError:
    """The usual mapping of a media host's error status: 429 rate limited (honouring Retry-After),
    ``auth_statuses`` our credential refused (``auth_hint`` tells the operator what to check), 404
    ``not_found`` (default: the status line), 408/409/5xx unavailable, anything else a bad request.
    ``message`` must already be redacted (redacted_message)."""
    text = f"{target.provider} returned {status}: {message}"
    kwargs = {"provider": target.provider, "upstream_status": status}
    if status == 429:
        return errors.ProviderRateLimited(text, retry_after=parse_retry_after(headers), **kwargs)
    if status in auth_statuses:
        return errors.ProviderAuthFailed(
            f"{target.provider} refused the gateway's credential ({status}: {message}); {auth_hint}", **kwargs)
    if status == 404:
        return errors.ProviderNotFound(not_found or text, **kwargs)
    if status in (408, 409) or status >= 500:
        return errors.ProviderUnavailable(text, **kwargs)
    return errors.ProviderBadRequest(text, **kwargs)


def credential_refused(status: int, target: Target) -> errors.ProviderAuthFailed:
    """Our credential refused, said without the upstream's message: it may quote part of our key.
    The client can do nothing about it; the operator must."""
    return errors.ProviderAuthFailed(
        f"{target.provider} refused the gateway's credential (HTTP {status}). This is not your key: an operator "
        "must update the provider credential.", provider=target.provider, upstream_status=status)


def job_error_mapper(map_error: ErrorMapper, job: str) -> ErrorMapper:
    """``map_error`` for the calls about one queued job (its status, result, cancel): there a 404
    means the provider no longer knows the job, not the model."""
    def map_job_error(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
        if status == 404:
            return errors.ProviderNotFound(f"{target.provider} no longer knows this {job} (404).",
                                           provider=target.provider, upstream_status=status)
        return map_error(status, headers, body, target)
    return map_job_error


async def fetch_json(prepared: httpx.Request, target: Target, map_error: ErrorMapper) -> dict[str, Any]:
    """Send a prepared request; its body, a JSON object, or a ProviderError for whatever went
    wrong (ProviderMalformed for a body that is not JSON, or JSON but not an object)."""
    try:
        response = await get_client().send(prepared)
        if response.status_code >= 400:
            raise map_error(response.status_code, response.headers, response.content, target)
        payload = response.json()
    except httpx.TransportError as exc:
        raise transport_error(exc, target) from exc
    except ValueError as exc:
        raise malformed("a body that is not JSON", target) from exc
    if not isinstance(payload, dict):
        raise malformed(f"a JSON {type(payload).__name__} where its API answers an object", target)
    return payload


@asynccontextmanager
async def streamed_response(prepared: httpx.Request, target: Target,
                            map_error: ErrorMapper) -> AsyncIterator[httpx.Response]:
    """The streamed response of a prepared request, already checked for an error status, and
    closed (its connection back to the pool) however the caller leaves."""
    try:
        response = await get_client().send(prepared, stream=True)
    except httpx.TransportError as exc:
        raise transport_error(exc, target) from exc
    try:
        if response.status_code >= 400:
            raise map_error(response.status_code, response.headers, await response.aread(), target)
        yield response
    finally:
        await response.aclose()


class StreamReader(Protocol):
    """An adapter's translator of one streamed answer, as relay_stream drives it."""

    produced: bool  # an event went to the client: a failure from now on is final
    ended: bool  # the provider's own end of the answer came

    def read(self, name: str, data: Any) -> Iterable[StreamEvent]:
        """The IR events for one server-sent event: ``name`` its ``event:`` line, ``data`` its JSON.
        A vendor error event raises the ProviderError it maps to."""
        ...


async def relay_stream(prepared: httpx.Request, target: Target, map_error: ErrorMapper, reader: StreamReader, *,
                       end: str) -> AsyncIterator[StreamEvent]:
    """The events ``reader`` makes of a streamed SSE answer, until it has ended (or ``[DONE]``).
    A dropped connection, an event that is not a JSON object (malformed), or a stream that stops
    before ``end`` (the vendor's last event, for the message) leave as our errors. The caller must
    close this iterator when it is closed itself (contextlib.aclosing), so the connection goes
    with it."""
    try:
        async with streamed_response(prepared, target, map_error) as response:
            async for sse in decode_events(response.aiter_lines()):
                if sse.data.startswith("[DONE]"):
                    break
                data = json.loads(sse.data)
                if not isinstance(data, dict):
                    raise malformed("a stream event that is not a JSON object", target, produced=reader.produced)
                for event in reader.read(sse.event, data):
                    yield event
                if reader.ended:
                    break
    except httpx.TransportError as exc:
        raise stream_transport_error(exc, target, produced=reader.produced) from exc
    except json.JSONDecodeError as exc:
        raise malformed("a stream event that is not JSON", target, produced=reader.produced) from exc
    if not reader.ended:
        raise errors.ProviderStreamBroken(
            f"{target.provider} ended the stream before {end}.", provider=target.provider)


async def download(url: str, target: Target, headers: dict[str, str] | None = None) -> bytes:
    """A generated file from a provider URL (or a data: URL), as bytes."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return base64.b64decode(data) if header.endswith(";base64") else data.encode()
    try:
        response = await get_client().get(url, headers=headers or {}, timeout=timeout_for(target),
                                           follow_redirects=True)
    except httpx.TransportError as exc:
        raise transport_error(exc, target) from exc
    if response.status_code >= 400:
        raise errors.ProviderUnavailable(
            f"{target.provider} did not hand over the generated file (HTTP {response.status_code}).",
            provider=target.provider)
    return response.content
