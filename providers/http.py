"""The one pooled httpx.AsyncClient per process (per event loop).

httpx's own pool degrades under concurrency; its API over aiohttp's pool (httpx-aiohttp) does
not. HTTPX_TRANSPORT picks the transport; bench/ measures both. Timeouts are set per call
from the provider's row, so the client itself has none.
"""

import asyncio

import httpx
from django.conf import settings

_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def _build_client() -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=settings.UPSTREAM_MAX_CONNECTIONS,
        max_keepalive_connections=settings.UPSTREAM_MAX_CONNECTIONS,
    )
    if settings.HTTPX_TRANSPORT == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=None)
    if settings.HTTPX_TRANSPORT == "httpx":
        return httpx.AsyncClient(timeout=None, limits=limits)
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


async def close_client() -> None:
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
