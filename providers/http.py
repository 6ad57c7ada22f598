"""The one pooled httpx.AsyncClient per process (per event loop).

httpx's own pool degrades under concurrency; its API over aiohttp's pool (httpx-aiohttp) does
not. HTTPX_TRANSPORT picks the transport; bench/ measures both. Timeouts are set per call
from the provider's row, so the client itself has none.
"""

import asyncio
from http.cookiejar import CookieJar

import httpx
from django.conf import settings

_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


class NoCookies(CookieJar):
    """The client is shared by every tenant: a cookie one provider answer sets must never ride
    along on another tenant's request (and parsing Set-Cookie on every answer costs CPU)."""

    def extract_cookies(self, response, request) -> None:
        pass


def _build_client() -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=settings.UPSTREAM_MAX_CONNECTIONS,
        max_keepalive_connections=settings.UPSTREAM_MAX_CONNECTIONS,
    )
    if settings.HTTPX_TRANSPORT == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=None, cookies=NoCookies())
    if settings.HTTPX_TRANSPORT == "httpx":
        return httpx.AsyncClient(timeout=None, limits=limits, cookies=NoCookies())
    raise ValueError(f"HTTPX_TRANSPORT must be 'aiohttp' or 'httpx', not {settings.HTTPX_TRANSPORT!r}")


def get_client() -> httpx.AsyncClient:
    # Keyed by loop: a client's connections belong to the loop that opened them (tests run
    # several loops in one process; servers run one).
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        for stale in [other for other in _clients if other.is_closed()]:
            del _clients[stale]
        client = _clients[loop] = _build_client()
    return client


async def send(request: httpx.Request, *, stream: bool = False) -> httpx.Response:
    """``get_client().send(request)`` for a prepared request, less the layers of httpx the gateway
    never uses: no auth flow, no redirects (the client follows none), no cookies (NoCookies), no
    event hooks. The same transport, with its proxy mounts. Measured at a third of httpx's CPU
    per call (bench/RESULTS.md). A whole answer is read and its connection released; a streamed
    one must be closed by the caller (``await response.aclose()``)."""
    transport = get_client()._transport_for_url(request.url)  # httpx 0.28's own lookup (pinned)
    response = await transport.handle_async_request(request)
    response.request = request
    if not stream:
        try:
            await response.aread()
        finally:
            await response.aclose()
    return response


async def close_client() -> None:
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
