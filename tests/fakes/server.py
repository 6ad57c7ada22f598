"""What every fake upstream shares: an aiohttp app served on 127.0.0.1 from a thread of its own,
answering from a script (ScriptedServer); and, for the fakes of task APIs that hand back files
(fal, Replicate, WaveSpeed, Ark, ModelScope, the Hugging Face router), the request log, key check
and file host they have in common (TaskApiServer)."""

import asyncio
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

BODY = web.RequestKey("body", object)  # the request's body as TaskApiServer read it


class ThreadedServer:
    """Serves ``self.app()`` on 127.0.0.1 (a free port unless given) in a daemon thread with its
    own event loop, so the tests' synchronous code and the gateway's loop both reach it over
    real HTTP."""

    thread_name = "fake-upstream"

    def __init__(self) -> None:
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        raise NotImplementedError

    def start(self, port: int = 0):
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            runner = web.AppRunner(self.app(), access_log=None)
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", port)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(runner.cleanup())
            self.loop.close()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)


class ScriptedServer(ThreadedServer):
    """A fake upstream answering from a script: ``enqueue(Reply(...))`` decides the next answers,
    unscripted requests get ``reply_class()``'s default, and every request is kept in
    ``requests`` for the test to assert on."""

    reply_class: type = object

    def __init__(self, *, api_key: str | None) -> None:
        super().__init__()
        self.api_key = api_key
        self.script: deque = deque()
        self.requests: list[dict] = []

    @property
    def base_url(self) -> str:
        """Where the adapter is pointed (the vendor's API root)."""
        return self.address

    def enqueue(self, *replies) -> None:
        self.script.extend(replies)

    def next_reply(self):
        return self.script.popleft() if self.script else self.reply_class()

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()


class TaskApiServer(ScriptedServer):
    """A scripted fake of an API that runs tasks and hands back the files they made.

    Every request but a file download is kept in ``requests`` (method, path, query, headers, and
    the body as ``read_body`` reads it, also left in ``request[BODY]`` for the handler) and
    refused with the fake's own ``unauthorized()`` answer unless ``Authorization`` is
    ``{auth_scheme} {api_key}``. Files kept with ``keep`` are served at ``/files/{name}`` with no
    key, as the vendors' CDNs serve them. ``routes`` adds the fake's own API."""

    auth_scheme = "Bearer"

    def __init__(self, *, api_key: str) -> None:
        super().__init__(api_key=api_key)
        self.files: dict[str, tuple[str, bytes]] = {}  # name -> (content type, content)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.admit])
        app.router.add_get("/files/{name}", self.file)
        self.routes(app.router)
        return app

    def routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def unauthorized(self) -> web.Response:
        """The 401 for a missing or wrong key, in the vendor's error format."""
        raise NotImplementedError

    async def read_body(self, request: web.Request) -> Any:
        """The request's JSON body, or None when it has none or it is not JSON."""
        try:
            return await request.json() if request.can_read_body else None
        except ValueError:
            return None

    @web.middleware
    async def admit(self, request: web.Request, handler) -> web.StreamResponse:
        if request.path.startswith("/files/"):
            return await handler(request)
        request[BODY] = body = await self.read_body(request)
        self.requests.append({"method": request.method, "path": request.path, "query": dict(request.query),
                              "headers": CIMultiDict(request.headers), "body": body})
        if request.headers.get("Authorization") != f"{self.auth_scheme} {self.api_key}":
            return self.unauthorized()
        return await handler(request)

    def calls(self, method: str, suffix: str = "") -> list[dict]:
        """The requests kept with this method, to a path ending in ``suffix``."""
        return [r for r in self.requests if r["method"] == method and r["path"].endswith(suffix)]

    def keep(self, name: str, content_type: str, content: bytes, *, route: str = "files") -> str:
        """Keeps a file made by a task; its URL (``route`` is where the fake serves it)."""
        self.files[name] = (content_type, content)
        return f"{self.address}/{route}/{name}"

    def file_response(self, name: str) -> web.Response | None:
        found = self.files.get(name)
        return None if found is None else web.Response(body=found[1], content_type=found[0])

    async def file(self, request: web.Request) -> web.Response:
        return self.file_response(request.match_info["name"]) or web.Response(status=404, text="Not Found")


def scripted_state(states: Sequence[str], step: int) -> str:
    """A scripted task's state after ``step`` moves on: ``states[step]``, staying on the last one.
    Fakes whose task starts in a state before the script put it first."""
    return states[min(step, len(states) - 1)]
