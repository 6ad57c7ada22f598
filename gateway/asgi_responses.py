"""A /v1 answer onto the wire: a Django HttpResponse sent as ASGI messages, a stream in as few
writes as it can be.

    await send_response(response, send)

Django's own ASGIHandler.send_response passes a stream through four generators per part (the
response's __aiter__, streaming_content's wrapper, aclosing, chunk_bytes) and sends each part
alone: a chat stream's dozen events were a dozen socket writes, and its end one more. Here the
parts a stream has ready when it is asked, those the provider's last read already held, leave as
one write, the last of them with the end (``body_messages``); a part that has to be waited for
goes out once it comes, never held back.
A response whose body is a synchronous iterator (a file) keeps Django's way (``fallback``).
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from django.http import HttpResponseBase

from providers.awaiting import resume

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
    async for message in body_messages(response.streaming_content):
        await send(message)


def headers_of(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    """The response's headers as ASGI wants them (Django's encodings: names ASCII, values latin-1)."""
    headers = [(name.encode("ascii"), value.encode("latin-1")) for name, value in response.items()]
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return headers


async def body_messages(parts: AsyncIterator[bytes]) -> AsyncIterator[dict]:
    """``parts`` as ASGI body messages: each holds every part that was ready without waiting, and
    the last one (more_body false) the parts that came with the stream's end.

    Each ``anext`` is stepped by hand: a step that finishes at once gives a ready part, kept for
    the message; a step that suspends means the next part must be waited for, so the parts kept
    so far leave first, then the step is awaited as ``await`` would have (providers.awaiting)."""
    pending: list[bytes] = []
    try:
        while True:
            step = parts.__anext__()
            try:
                signal = step.send(None)
            except StopIteration as ready:
                pending.append(ready.value)
                continue
            if pending:
                yield {"type": "http.response.body", "body": b"".join(pending), "more_body": True}
                pending.clear()
            pending.append(await resume(step, signal))
    except StopAsyncIteration:
        pass
    except Exception:
        if pending:  # what came before a failure still goes out before it
            yield {"type": "http.response.body", "body": b"".join(pending), "more_body": True}
        raise
    yield {"type": "http.response.body", "body": b"".join(pending), "more_body": False}


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
