"""The one pooled HTTP client per process (per event loop), and ``send``, which every call to a
provider goes through.

httpx's own pool degrades under concurrency; its API over aiohttp's pool (httpx-aiohttp) does
not. HTTPX_TRANSPORT picks the transport; bench/ measures both. Timeouts are set per call
from the provider's row, so the client itself has none. The aiohttp session keeps no cookies
either: it is shared by every tenant.

    send(request, stream=False)   a Prepared request (or an httpx.Request) sent; its response

On the aiohttp transport without a proxy, ``send`` hands the request to aiohttp itself and
answers with a ``ProviderResponse``: what the adapters read of a response (status_code,
headers, content, aread, aiter_bytes, aiter_lines, aclose), without httpx's Request and
Response objects around aiohttp's, which cost more CPU than aiohttp's own call (bench/RESULTS.md).
Elsewhere (the httpx transport, a proxy mount) the request goes through httpx's transport.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from http.cookiejar import CookieJar

import aiohttp
import httpx
from django.conf import settings
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

from providers.sse import lines_of

_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request to a provider, ready to send: method, absolute URL, headers, body and timeouts
    (httpx.Timeout's connect, read and pool are what aiohttp applies)."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes
    timeout: httpx.Timeout

    def as_httpx(self) -> httpx.Request:
        return httpx.Request(self.method, self.url, headers=self.headers, content=self.content,
                             extensions={"timeout": self.timeout.as_dict()})


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
        def session() -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(limit=limits.max_connections, keepalive_timeout=limits.keepalive_expiry,
                                             ssl=httpx.create_ssl_context())
            return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

        return httpx.AsyncClient(transport=AiohttpTransport(limits=limits, client=session), timeout=None,
                                 cookies=NoCookies())
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


def aiohttp_session(client: httpx.AsyncClient) -> aiohttp.ClientSession | None:
    """The aiohttp session that carries the client's requests straight, or None where httpx's
    transport must (the httpx transport; proxies, which httpx mounts per URL)."""
    transport = client._transport  # httpx 0.28's (pinned)
    if client._mounts or not isinstance(transport, AiohttpTransport) or transport.proxy is not None:
        return None
    if not isinstance(transport.client, aiohttp.ClientSession):
        transport.client = transport.get_client()
    return transport.client


@lru_cache(maxsize=64)
def aiohttp_timeout(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


async def send(request: Prepared | httpx.Request, *, stream: bool = False):
    """Send a prepared request: a whole answer is read and its connection released; a streamed
    one must be closed by the caller (``await response.aclose()``). With httpx's transport it
    is ``get_client().send(request)`` less the layers the gateway never uses: no auth flow, no
    redirects (the client follows none), no cookies, no event hooks."""
    client = get_client()
    session = aiohttp_session(client) if isinstance(request, Prepared) else None
    if session is not None:
        response = ProviderResponse(await open_on_aiohttp(session, request))
    else:
        response = await open_through_httpx(client, request.as_httpx() if isinstance(request, Prepared) else request)
    if not stream:
        try:
            await response.aread()
        finally:
            await response.aclose()
    return response


async def open_on_aiohttp(session: aiohttp.ClientSession, request: Prepared) -> aiohttp.ClientResponse:
    timeout = request.timeout
    with map_aiohttp_exceptions():
        return await session.request(request.method, request.url, headers=request.headers,
                                     data=request.content or None, allow_redirects=False, compress=False,
                                     timeout=aiohttp_timeout(timeout.connect, timeout.read, timeout.pool))


async def open_through_httpx(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    transport = client._transport_for_url(request.url)  # httpx 0.28's own lookup (pinned)
    response = await transport.handle_async_request(request)
    response.request = request
    return response


class ProviderResponse:
    """A provider's answer as aiohttp read it, with the parts of httpx.Response the adapters use.
    Failures while reading are httpx's transport errors, as on httpx's own path."""

    __slots__ = ("raw", "status_code", "content", "_headers")

    def __init__(self, raw: aiohttp.ClientResponse):
        self.raw = raw
        self.status_code = raw.status
        self.content: bytes | None = None
        self._headers: httpx.Headers | None = None

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(self.raw.raw_headers)
        return self._headers

    async def aread(self) -> bytes:
        if self.content is None:
            with map_aiohttp_exceptions():
                self.content = await self.raw.read()
        return self.content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        with map_aiohttp_exceptions():
            async for chunk in self.raw.content.iter_any():
                yield chunk

    def aiter_lines(self) -> AsyncIterator[str]:
        return lines_of(self)

    async def aclose(self) -> None:
        self.raw.release()


async def close_client() -> None:
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
