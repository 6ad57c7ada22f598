"""The ASGI handler for /v1: Django's request and response objects, views and URLconf, without
the per-request machinery the API does not use.

Measured per request (bench/), Django's ASGIHandler spends more on thread hops than the
gateway spends on its own work:
- every MiddlewareMixin middleware runs sync under ASGI: two thread hops each. The API keeps
  no session, cookie, CSRF token or message, so its chain is empty.
- request_started has sync receivers that manage the request thread's database connection:
  a hop to a thread created per request (ThreadSensitiveContext). /v1 never touches that
  connection: its writes go through usage.writer and its cache-miss reads run on the shared
  executor and close their own connection (providers.blocking), so neither is needed.
  The response is closed without request_finished either (asgi_responses.close): its receivers
  would find no connection to close on the event loop's thread.
- URL resolution: a fixed route (no argument in its path: /v1/chat/completions) is resolved once
  per path and remembered; the resolver's regexes cost more than the rest of the routing.
- the view runs in the request's own task (respond_to), not a task of its own raced against a
  disconnect listener with asyncio.wait: one task per request less (ClientWatch), and the
  response leaves through gateway/asgi_responses.py (one generator per stream part, not four).
Pages and the admin keep Django's full handler and settings.MIDDLEWARE, behind BodyLimit.
/healthz, /readyz and /metrics take this handler too (gateway/probes.py): a load balancer's probe
needs no session, and /healthz no database.

Each /v1 request is one trace (providers/tracing.py, when configured), one log line and one set
of counters (gateway/v1/request_log.py), written once its answer has been sent.
"""

import asyncio
import gc
import io
import json
import os
import tempfile
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import response_for_exception
from django.urls import get_resolver, set_script_prefix

from caching import store as cache_store
from gateway import asgi_responses
from gateway.api_requests import ApiRequest
from gateway.v1 import request_log
from gateway.v1.admission import too_large
from gateway.v1.errors import error_response
from gateway.v1.headers import add_missing_headers
from providers import breaker, tracing
from providers.http import close_client
from usage.metrics import OPEN_STREAMS
from usage.writer import writer

API_PREFIX = "/v1/"
FIXED_ROUTES_KEPT = 256  # paths that match a pattern without arguments: a bounded set

# On every /v1 answer, as SecurityMiddleware would add them to pages: no content sniffing, and
# no URL of ours (signed media links) passed on as a Referer.
API_RESPONSE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class BodyTooLarge(Exception):
    pass


class ApiHandler(ASGIHandler):
    request_class = ApiRequest

    def __init__(self):
        super().__init__()
        self.fixed_routes: dict[tuple[str, str], object] = {}  # (urlconf, path) -> its ResolverMatch

    def load_middleware(self, is_async=False):
        """No middleware: respond_to calls the view itself."""
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = None

    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)

    def resolve_request(self, request):
        """Django's, remembered for the paths of fixed routes (a path with an id, or the catch-all
        for unknown endpoints, has arguments and is resolved each time)."""
        key = (settings.ROOT_URLCONF, request.path_info)
        match = self.fixed_routes.get(key)
        if match is None:
            match = super().resolve_request(request)
            if not match.args and not match.kwargs and len(self.fixed_routes) < FIXED_ROUTES_KEPT:
                self.fixed_routes[key] = match
        request.resolver_match = match
        return match

    async def send_response(self, response, send):
        """Every /v1 answer leaves through here: views', refusals and the 413 alike."""
        add_missing_headers(response, API_RESPONSE_HEADERS)
        if not response.streaming:
            await asgi_responses.send_response(response, send, super().send_response)
            return
        OPEN_STREAMS.inc()
        try:
            await asgi_responses.send_response(response, send, super().send_response)
        finally:
            OPEN_STREAMS.dec()

    async def read_body(self, receive):
        """Django's, but it stops at API_MAX_BODY_BYTES instead of spooling any size to disk
        before the view could refuse it; a body that came in one message is read from memory."""
        limit = settings.API_MAX_BODY_BYTES
        body_file = None
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if body_file is not None:
                    body_file.close()
                raise RequestAborted()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if body_file is not None:
                    body_file.close()
                raise BodyTooLarge()
            more = message.get("more_body", False)
            if body_file is None:
                if not more:  # the whole body, as most requests send theirs
                    return io.BytesIO(chunk)
                body_file = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")
            body_file.write(chunk)
            if not more:
                break
        body_file.seek(0)
        return body_file

    async def handle(self, scope, receive, send):
        if not scope["path"].startswith(API_PREFIX):
            await self.answer(scope, receive, send)
            return
        started = time.monotonic()
        headers = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in scope["headers"]} if tracing.is_enabled() else {}
        with tracing.request_span(f"{scope['method']} /v1", headers):
            request, status = await self.answer(scope, receive, send)
            request_log.finish(request, status, time.monotonic() - started)

    async def answer(self, scope, receive, send) -> tuple:
        """Read, route and answer one request: (the request or None, the status sent or 499)."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return None, request_log.CLIENT_GONE
        except BodyTooLarge:
            await self.send_response(error_response(too_large()), send)
            return None, 413
        set_script_prefix(get_script_prefix(scope))
        request, refusal = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(refusal, send)
            refusal.close()
            return None, refusal.status_code
        with ClientWatch(receive) as watch:
            status = request_log.CLIENT_GONE
            try:
                response = await self.respond_to(request)
                status = response.status_code
                try:
                    await self.send_response(response, send)
                finally:
                    watch.stop()
                    asgi_responses.close(response)
            except asyncio.CancelledError:
                if not watch.gone:
                    raise
                watch.absorb()
            finally:
                body_file.close()
        await watch.settled()
        return request, status

    async def respond_to(self, request):
        """The view's response, as Django's BaseHandler would get it with no middleware: the
        route, the view (every /v1 view is async), any exception it lets out as Django answers it."""
        try:
            match = self.resolve_request(request)
            response = await match.func(request, *match.args, **match.kwargs)
        except Exception as exc:
            response = await sync_to_async(response_for_exception, thread_sensitive=False)(request, exc)
        response._resource_closers.append(request.close)  # as Django's handler: uploaded files
        return response


class ClientWatch:
    """A client that hangs up cancels the request's task (the view, or the stream it is sending),
    whose own cleanup settles the request, as Django's handler does with a task of its own for
    the view; here the view runs in the request's task and only the watch is a second one.

    ``stop()`` once the answer is sent (no cancellation after it); a CancelledError caught while
    ``gone`` is the watch's and ``absorb()`` takes it back; ``settled()`` takes back one sent
    after the task's last await, before the task goes on."""

    def __init__(self, receive):
        self.receive = receive
        self.task = asyncio.current_task()
        self.gone = False
        self.absorbed = False
        self.watcher = None

    def __enter__(self):
        self.watcher = asyncio.create_task(self.watch())
        return self

    def __exit__(self, *exc_info):
        self.stop()

    async def watch(self) -> None:
        try:
            while (await self.receive())["type"] != "http.disconnect":
                pass
        except Exception:  # the server's receive failed: the connection is as good as gone
            pass
        self.gone = True
        self.task.cancel()

    def stop(self) -> None:
        self.watcher.cancel()

    def absorb(self) -> None:
        self.absorbed = True
        self.task.uncancel()

    async def settled(self) -> None:
        if self.gone and not self.absorbed:
            try:
                await asyncio.sleep(0)  # the cancellation is delivered here
            except asyncio.CancelledError:
                self.absorb()


class BodyLimit:
    """Requests outside /v1 (pages, the admin, /api/, Stripe webhooks) stop at
    MAX_REQUEST_BODY_BYTES while they are read. Django's handler would first spool a body of any
    size to disk; here a Content-Length over the limit is a 413 before a byte of the body is
    taken, and a chunked body is cut where it passes the limit (Django sees the client leave,
    and the client gets the 413)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = settings.MAX_REQUEST_BODY_BYTES
        if declared_length(scope) > limit:
            await send_too_large(scope, send, limit)
            return
        received, cut, started = 0, False, False

        async def counted_receive():
            nonlocal received, cut
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut = True
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted_receive, watched_send)
        if cut and not started:
            await send_too_large(scope, send, limit)


def declared_length(scope) -> int:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # Django refuses it on its own
    return 0


async def send_too_large(scope, send, limit: int) -> None:
    message = f"The request body is larger than the {limit} bytes this server accepts."
    if scope["path"].startswith("/api/"):  # the management API's error shape
        body, content_type = json.dumps({"error": {"message": message, "code": "too_large"}}), b"application/json"
    else:
        body, content_type = message + "\n", b"text/plain; charset=utf-8"
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", content_type), (b"content-length", str(len(body.encode())).encode()),
        (b"connection", b"close"), (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body.encode()})


class PathDispatcher:
    """Send HTTP requests under ``prefix`` or to one of ``paths`` to ``api``, everything else to ``site``."""

    def __init__(self, *, prefix: str, api, site, paths: frozenset[str] = frozenset()):
        self.prefix = prefix
        self.paths = paths
        self.api = api
        self.site = site

    async def __call__(self, scope, receive, send):
        path = scope["path"]
        app = self.api if path.startswith(self.prefix) or path in self.paths else self.site
        await app(scope, receive, send)


class Lifespan:
    """ASGI lifespan around ``app``: at shutdown, close the pooled upstream client and let the
    ledger writer commit what is queued (servers that send no lifespan events skip this)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                writer.start()  # its sweep of dead requests' reservations runs from now on, traffic or not
                tracing.configure()
                tune_garbage_collector()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await close_client()
                await breaker.close()
                await cache_store.close()
                await asyncio.to_thread(writer.stop)
                await asyncio.to_thread(tracing.shutdown)
                forget_live_gauges()
                await send({"type": "lifespan.shutdown.complete"})
                return


# Collect the youngest generation after this many net allocations, not CPython's 700: serving
# allocates thousands of objects a request, most freed at once by their reference counts.
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Load what the first request would (the URLconf and with it every view module), move
    everything start-up made out of the collector's reach (gc.freeze: a full collection then walks
    only what serving made since), and collect the young less often. Measured in one worker over
    4,000 requests: a full collection 110 -> 5 ms (a pause of the event loop), the collector's
    time 0.13 -> 0.02 ms a request."""
    get_resolver().resolve(API_PREFIX + "models")
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def forget_live_gauges() -> None:
    """In multiprocess mode (``manage.py serve``), drop this worker's live gauges (open streams,
    writer queue, breakers) from /metrics' sum; its counters stay counted."""
    from prometheus_client import multiprocess, values

    if values.ValueClass is not values.MutexValue:
        multiprocess.mark_process_dead(os.getpid())
