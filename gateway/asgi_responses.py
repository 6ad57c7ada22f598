"""A /v1 answer onto the wire: a Django HttpResponse sent as ASGI messages.

    await send_response(response, send, fallback)

Django's own ASGIHandler.send_response passes each part of a stream through four generators (the
response's __aiter__, streaming_content's wrapper, aclosing, chunk_bytes); here through one.
A response whose body is a synchronous iterator (a file) keeps Django's way (``fallback``).

Joining the parts a stream has ready into one write was tried (each ``anext`` stepped by hand) and
taken out: a write that waits for a slow client then waited with the stream's next read already
started, its timeout running against the request's task (bench/RESULTS.md).
"""

import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing

from django.http import HttpResponseBase

log = logging.getLogger(__name__)

Send = Callable[[dict], Awaitable[None]]


async def send_response(response: HttpResponseBase, send: Send,
                        fallback: Callable[[HttpResponseBase, Send], Awaitable[None]]) -> None:
    if response.streaming and not response.is_async:
        await fallback(response, send)
        return
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers_of(response)})
    if not response.streaming:
        await send({"type": "http.response.body", "body": response.content})
        return
    # Each part is sent once the stream has given it and before the stream is asked for the next:
    # a part is never held back, and nothing the stream started (a provider read under its
    # timeout) is left waiting while the client is slow to take a write. Closed however this ends.
    async with aclosing(response.streaming_content) as parts:
        async for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body"})


def headers_of(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    """The response's headers as ASGI wants them (Django's encodings: names ASCII, values latin-1)."""
    headers = [(name.encode("ascii"), value.encode("latin-1")) for name, value in response.items()]
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return headers


def close(response: HttpResponseBase) -> None:
    """HttpResponseBase.close less its request_finished signal: run the response's closers (a
    stream's, which settles a request whose client left; the request's uploaded files). The
    signal's receivers close the calling thread's database connections and caches, which the
    event loop's thread never opens (/v1's writes go through usage.writer, its reads through
    providers.blocking)."""
    for closer in response._resource_closers:
        try:
            closer()
        except Exception:
            log.exception("closing a /v1 response failed")
    response._resource_closers.clear()
    response.closed = True
