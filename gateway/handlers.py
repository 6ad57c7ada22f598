"""The ASGI handler for /v1: Django's request and response objects, views and URLconf, without
the per-request machinery the API does not use.

Measured per request (bench/), Django's ASGIHandler spends more on thread hops than the
gateway spends on its own work:
- every MiddlewareMixin middleware runs sync under ASGI: two thread hops each. The API keeps
  no session, cookie, CSRF token or message, so its chain is empty.
- request_started / request_finished have sync receivers that manage the request thread's
  database connection; each signal is a hop to a thread created per request (ThreadSensitiveContext).
  /v1 never touches that connection: its writes go through usage.writer and its cache-miss
  reads run on the shared executor (thread_sensitive=False), so neither signal nor context is needed.
Pages and the admin keep Django's full handler and settings.MIDDLEWARE.
"""

import asyncio

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import set_script_prefix

from providers.http import close_client
from usage.writer import writer


class ApiHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)

    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def respond():
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            finally:
                response.close()

        # As Django does: a client that disconnects cancels the view (or the stream), whose
        # own cleanup settles the request.
        listener = asyncio.create_task(self.listen_for_disconnect(receive))
        responder = asyncio.create_task(respond())
        try:
            await asyncio.wait([listener, responder], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (listener, responder):
                if not task.done():
                    task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, RequestAborted):
                    pass
            body_file.close()


class PathDispatcher:
    """Send HTTP requests under ``prefix`` to ``api``, everything else to ``site``."""

    def __init__(self, *, prefix: str, api, site):
        self.prefix = prefix
        self.api = api
        self.site = site

    async def __call__(self, scope, receive, send):
        app = self.api if scope["path"].startswith(self.prefix) else self.site
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
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await close_client()
                await asyncio.to_thread(writer.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return
