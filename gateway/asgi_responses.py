"""A /v1 answer onto the wire: a Django HttpResponse sent as ASGI messages.

    await send_response(response, send, fallback)

Django's own ASGIHandler.send_response passes each part of a stream through four generators (the
response's __aiter__, streaming_content's wrapper, aclosing, chunk_bytes); here through none: the
stream's own iterator is read. A response whose body is a synchronous iterator (a file) keeps
Django's way (``fallback``).

A stream's parts go out through a Coalescer: the parts the stream gives while the request's task
runs on are joined, and written when the task next waits (for the provider's next bytes, most
often). A provider's read brings several events at once; each was a write of its own, a system
call each, and the request's costliest per-event step (bench/RESULTS.md). No part is held back
longer than the task runs without waiting, and the stream is never stepped by hand: an earlier
attempt that did so left a provider read started, under its timeout, while a slow client's write
waited. Here a write the client is slow to take finishes in a task of its own, and the stream
waits for it before it is asked for its next part: nothing is read while the client is behind.
"""

import asyncio
import logging
import types
from collections.abc import Awaitable, Callable
from contextlib import aclosing

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
    writes = Coalescer(send)
    try:
        # The response's own iterator (streaming_content wraps it in one more generator), closed
        # however this ends.
        async with aclosing(response._iterator) as parts:
            async for part in parts:
                await writes.put(part if type(part) is bytes else response.make_bytes(part))
        await writes.end()
    finally:
        writes.close()


class Coalescer:
    """A stream's parts as few writes (module docstring).

    ``await put(part)`` queues a part: written with the others queued when the task next waits,
    after any write still waiting for the client. ``await end()`` writes what is queued with the
    stream's end. ``close()`` drops what is left (the stream failed or was cancelled)."""

    __slots__ = ("send", "loop", "queued", "scheduled", "behind", "failure", "closed")

    def __init__(self, send: Send):
        self.send = send
        self.loop = asyncio.get_running_loop()
        self.queued: list[bytes] = []
        self.scheduled = False
        self.behind: asyncio.Task | None = None  # a write the client has not taken yet
        self.failure: BaseException | None = None  # of a write made from the loop
        self.closed = False

    async def put(self, part: bytes) -> None:
        if self.behind is not None or self.failure is not None:
            await self.caught_up()
        self.queued.append(part)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    async def end(self) -> None:
        await self.caught_up()
        body, self.queued = b"".join(self.queued), []
        await self.send({"type": "http.response.body", "body": body})

    async def caught_up(self) -> None:
        if self.behind is not None:
            await self.behind
            self.behind = None
        if self.failure is not None:
            raise self.failure

    def flush(self) -> None:
        """From the loop, once the task waits: the queued parts as one write. The send is stepped
        once: a client keeping up takes it at once; one behind has it finished in a task."""
        self.scheduled = False
        if self.closed or not self.queued or self.behind is not None or self.failure is not None:
            return
        body, self.queued = b"".join(self.queued), []
        # Stepped as ``await`` steps it: uvicorn's send is a coroutine, granian's a Rust awaitable.
        waiting = self.send({"type": "http.response.body", "body": body, "more_body": True}).__await__()
        try:
            signal = next(waiting)
        except StopIteration:
            return
        except BaseException as error:
            self.failure = error
            return
        self.behind = self.loop.create_task(finish(waiting, signal))

    def close(self) -> None:
        self.closed = True
        self.queued = []
        if self.behind is not None and not self.behind.done():
            self.behind.cancel()


async def finish(waiting, signal) -> None:
    """The rest of a write stepped once, in the task that waits for the client."""
    if hasattr(waiting, "throw"):  # a coroutine's: cancellation reaches it
        await resume(waiting, signal)
    else:
        await rest_of(waiting, signal)


@types.coroutine
def rest_of(waiting, signal):
    yield signal
    yield from waiting


def headers_of(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    """The response's headers as ASGI wants them (Django's encodings: names ASCII, values latin-1),
    read from Django's store of them (lower-cased name -> (name, value)), not through its
    case-insensitive mapping: a lookup by name for each header."""
    headers = [(name.encode("ascii"), value.encode("latin-1")) for name, value in response.headers._store.values()]
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
