"""The HTTP toolkit adapters share: timeouts from a target, JSON and streamed calls through the
pooled client, vendor error responses mapped to providers.errors (ErrorMapper), Retry-After, and
media downloads. The adapter interface itself is providers.adapters.base."""

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import httpx

from providers import errors, json_wire
from providers.adapters.answers import malformed
from providers.http import Prepared, ProviderResponse, get_client, send
from providers.sse import events_of
from providers.types import StreamEvent, Target

# An adapter's mapping of a vendor error response (status, headers, body) to our error tree.
ErrorMapper = Callable[[int, httpx.Headers, bytes, Target], errors.ProviderError]


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


def post_json(url: str | httpx.URL, headers: dict[str, str], body: dict[str, Any], target: Target) -> Prepared:
    """A JSON POST to a provider, with the target's timeouts: the hot calls' request (chat,
    messages, embeddings), which providers.http.send hands to aiohttp without httpx.Request."""
    return Prepared("POST", str(url), headers, json_wire.dumps(body), timeout_for(target))


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


async def fetch_json(prepared: Prepared | httpx.Request, target: Target, map_error: ErrorMapper) -> dict[str, Any]:
    """Send a prepared request; its body, a JSON object, or a ProviderError for whatever went
    wrong (ProviderMalformed for a body that is not JSON, or JSON but not an object)."""
    try:
        response = await send(prepared)
        if response.status_code >= 400:
            raise map_error(response.status_code, response.headers, response.content, target)
        payload = json_wire.loads(response.content)  # JSON is UTF-8: no charset sniffing (httpx's .json())
    except httpx.TransportError as exc:
        raise transport_error(exc, target) from exc
    except ValueError as exc:
        raise malformed("a body that is not JSON", target) from exc
    if not isinstance(payload, dict):
        raise malformed(f"a JSON {type(payload).__name__} where its API answers an object", target)
    return payload


@asynccontextmanager
async def streamed_response(prepared: Prepared | httpx.Request, target: Target,
                            map_error: ErrorMapper) -> AsyncIterator[ProviderResponse | httpx.Response]:
    """The streamed response of a prepared request, already checked for an error status, and
    closed (its connection back to the pool) however the caller leaves."""
    try:
        response = await send(prepared, stream=True)
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


async def relay_stream(prepared: Prepared | httpx.Request, target: Target, map_error: ErrorMapper, reader: StreamReader, *,
                       end: str) -> AsyncIterator[StreamEvent]:
    """The events ``reader`` makes of a streamed SSE answer, until it has ended (or ``[DONE]``).
    A dropped connection, an event that is not a JSON object (malformed), or a stream that stops
    before ``end`` (the vendor's last event, for the message) leave as our errors. The caller must
    close this iterator when it is closed itself (contextlib.aclosing), so the connection goes
    with it."""
    try:
        async with streamed_response(prepared, target, map_error) as response:
            async for sse in events_of(response):
                if sse.data.startswith("[DONE]"):
                    break
                data = json_wire.loads(sse.data)
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
