"""A pass-through HTTP proxy in front of the gateway that keeps a line per request a client made.

The clients of this suite (SDKs, frameworks, coding CLIs) decide for themselves how many requests
a user's prompt takes; the proxy sees each one, with the status and the gateway's request id
(``x-tollgate-request-id``), so a test can hold the usage records against the requests, and a
refusal is shown with the gateway's own message. Bodies stream through untouched, chunk by chunk.
"""

import json
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from tests.fakes.server import ThreadedServer

# Requests that call a model: each must leave exactly one usage record.
MODEL_CALLS = {"/v1/chat/completions", "/v1/responses", "/v1/messages"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade",
              "proxy-connection", "te", "trailer"}


@dataclass
class Exchange:
    method: str
    path: str
    body: dict | None
    status: int = 0
    request_id: str = ""
    refusal: str = ""  # the gateway's answer to a failed request, as text

    @property
    def is_model_call(self) -> bool:
        return self.method == "POST" and self.path in MODEL_CALLS

    def describe(self) -> str:
        model = (self.body or {}).get("model", "")
        line = f"{self.method} {self.path} {model} -> {self.status}"
        return f"{line}: {self.refusal}" if self.refusal else line


class RecordingProxy(ThreadedServer):
    thread_name = "client-recorder"

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.exchanges: list[Exchange] = []
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, app) -> None:
        if self._session is not None:
            await self._session.close()

    def reset(self) -> None:
        self.exchanges.clear()

    @property
    def model_calls(self) -> list[Exchange]:
        return [exchange for exchange in self.exchanges if exchange.is_model_call]

    def report(self) -> str:
        return "\n".join(exchange.describe() for exchange in self.exchanges) or "(no requests)"

    async def forward(self, request: web.Request) -> web.StreamResponse:
        if self._session is None:
            # No timeout of our own: the client under test decides how long it waits.
            self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        exchange = Exchange(request.method, request.path, body if isinstance(body, dict) else None)
        self.exchanges.append(exchange)
        headers = {name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP}
        async with self._session.request(request.method, self.target + request.path_qs, headers=headers,
                                         data=raw or None, allow_redirects=False) as upstream:
            exchange.status = upstream.status
            exchange.request_id = upstream.headers.get("x-tollgate-request-id", "")
            response = web.StreamResponse(status=upstream.status, headers={
                name: value for name, value in upstream.headers.items() if name.lower() not in HOP_BY_HOP})
            if upstream.status >= 400:
                answer = await upstream.read()
                exchange.refusal = answer.decode(errors="replace")[:2000]
                response.content_length = len(answer)
                await response.prepare(request)
                await response.write(answer)
                return response
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
