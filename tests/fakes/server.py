"""What every fake upstream shares: an aiohttp app served on 127.0.0.1 from a thread of its own."""

import asyncio
import threading
from collections import deque

from aiohttp import web


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

    def enqueue(self, *replies) -> None:
        self.script.extend(replies)

    def next_reply(self):
        return self.script.popleft() if self.script else self.reply_class()

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
