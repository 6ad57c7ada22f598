"""The executor's HTTP API (aiohttp): what providers/code_executor.py calls.

    POST /run    Authorization: Bearer <key>   {"code": "...", "timeout": 10}
                 -> 200 {"stdout", "stderr", "result", "error", "duration_ms", "timed_out"}
                 -> 400 {"error": "..."} for a body that is not that; 401 for a missing or wrong key
    GET /healthz -> 200 {"status": "ok", "running": snippets running, "waiting": snippets waiting}

A snippet that raises, loops or runs out of memory is still a 200: its error is the answer. At
most ``concurrency`` snippets run at once; the rest wait their turn. A caller that hangs up gives
up its run: waiting, it never starts; running, its process group is killed and its slot freed.
"""

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from executor.sandbox import Limits, run_snippet

MAX_CODE_CHARS = 200_000
DEFAULT_TIMEOUT = 10.0
SETTINGS = web.AppKey("settings", dict)
# Run where it is served: it imports a module the runner has not (the stdlib must be readable by
# the snippets' user) and says whether that user could write the stdlib (the next run would load it).
PROBE = "import fractions, os\nos.access(os.path.dirname(os.__file__), os.W_OK)"

log = logging.getLogger(__name__)


class Slots:
    """At most ``size`` runs at once, the rest waiting their turn; how many of each, for /healthz."""

    def __init__(self, size: int) -> None:
        self._free = asyncio.Semaphore(size)
        self.running = self.waiting = 0

    @contextlib.asynccontextmanager
    async def taken(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._free.release()


def make_app(*, key: str, limits: Limits, concurrency: int) -> web.Application:
    """The executor's app. Serve it with handler_cancellation=True (serve() does): aiohttp's
    default runs an abandoned request to its end, holding a slot for nobody."""
    if not key:
        raise ValueError("the executor needs a key (PYTHON_EXECUTOR_KEY): it runs whatever code it is sent")
    app = web.Application(client_max_size=MAX_CODE_CHARS * 6 + 4096)
    app[SETTINGS] = {"key": key, "limits": limits, "slots": Slots(concurrency)}
    app.router.add_post("/run", run)
    app.router.add_get("/healthz", healthz)
    return app


def refusal(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def is_authorized(request: web.Request, key: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode())


def parse_run(body: object, limits: Limits) -> tuple[str, float]:
    """(code, timeout) from a /run body, else ValueError saying what is wrong."""
    if not isinstance(body, dict):
        raise ValueError('The body must be a JSON object: {"code": "...", "timeout": seconds}.')
    code, timeout = body.get("code"), body.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(code, str):
        raise ValueError('"code" must be a string of Python.')
    if len(code) > MAX_CODE_CHARS:
        raise ValueError(f'"code" is {len(code)} characters; the most this executor runs is {MAX_CODE_CHARS}.')
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError('"timeout" must be a positive number of seconds.')
    return code, min(float(timeout), limits.max_timeout)


async def run(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not is_authorized(request, settings["key"]):
        return refusal(401, "A missing or wrong key: send Authorization: Bearer <PYTHON_EXECUTOR_KEY>.",
                       **{"WWW-Authenticate": "Bearer"})
    try:
        code, timeout = parse_run(await request.json(), settings["limits"])
    except ValueError as exc:  # json's own errors are ValueErrors too
        return refusal(400, str(exc))
    async with settings["slots"].taken():
        outcome = await run_snippet(code, seconds=timeout, limits=settings["limits"])
    return web.json_response(outcome.as_json())


async def healthz(request: web.Request) -> web.Response:
    slots = request.app[SETTINGS]["slots"]
    return web.json_response({"status": "ok", "running": slots.running, "waiting": slots.waiting})


def serve(*, host: str, port: int, key: str, limits: Limits, concurrency: int) -> None:
    """Serves the executor until SIGINT or SIGTERM; SystemExit if snippets cannot run here."""
    app = make_app(key=key, limits=limits, concurrency=concurrency)
    try:
        probe = asyncio.run(run_snippet(PROBE, seconds=5, limits=limits))
    except KeyError:  # pwd's: no such user
        raise SystemExit(f"There is no user {limits.user} to run snippets as: set EXECUTOR_USER.") from None
    if probe.error:
        raise SystemExit(f"Snippets cannot run with {limits.python}: {probe.error.splitlines()[-1]}\nThe executor "
                         f"runs them as {limits.user} when started as root: set EXECUTOR_PYTHON to an interpreter "
                         "that user can read (and not write), such as /usr/bin/python3.")
    if probe.result == "True":
        log.error("snippets can write the standard library of %s, which every run loads: use an interpreter "
                  "they cannot write (EXECUTOR_PYTHON), or start the executor as root", limits.python)
    log.warning("python executor on %s:%s for trusted environments only; network: %s", host, port,
                "a namespace of its own per snippet" if probe.network_isolated
                else "refused by an audit hook only (no namespace)")
    web.run_app(app, host=host, port=port, access_log=None, print=None, handler_cancellation=True)
