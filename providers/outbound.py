"""The one outbound-fetch policy: every fetch of a URL that a client gave us goes through here.

A client's URL (the first frame of an image-to-video job, a page web_fetch reads, a tenant's
alert webhook, which is POSTed to) is fetched by the gateway or its worker from inside the
operator's network, so it must never reach an address there:

- ``https`` only (plain ``http`` only for a host the operator allowed, OUTBOUND_ALLOWED_HOSTS);
- the host is resolved once and *every* address it resolves to is checked: loopback, private,
  link-local (169.254.169.254 among them), CGNAT, multicast, unspecified, reserved and
  documentation ranges, and their IPv6 forms (IPv4-mapped, 6to4, Teredo, NAT64) are refused,
  unless inside OUTBOUND_ALLOWED_NETWORKS or the host is allowed;
- the connection goes to exactly the addresses checked (aiohttp asks PinnedResolver, which
  answers only those), so a second DNS answer cannot swap them (rebinding);
- redirects are followed by hand, at most OUTBOUND_MAX_REDIRECTS, each hop checked the same way
  (and by the caller's ``before_hop``, if it gives one: web_fetch checks robots.txt there); a POST
  follows only 307 and 308, which resend its body, and any other redirect is its answer;
- the body is read in chunks and cut at OUTBOUND_MAX_BYTES (after decompression), and the whole
  fetch, redirects included, at OUTBOUND_TIMEOUT_SECONDS.

``check_url`` applies the address rules at admission, before anything is reserved or queued;
``fetch`` applies them again, hop by hop, when the URL is read. Every refusal is a UrlRefused
naming its rule: the client's error (400), never retried and never counted on a circuit
breaker that other tenants share. ``data:`` URLs are decoded here too, under the same size cap.
"""

import asyncio
import base64
import binascii
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings

from providers.errors import ClientInputError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

REDIRECTS = (301, 302, 303, 307, 308)
BODY_KEEPING_REDIRECTS = (307, 308)  # the only ones a POST follows: the others turn it into a GET
NAT64 = ipaddress.ip_network("64:ff9b::/96")
CHUNK = 64 * 1024

Hop = Callable[[str], Awaitable[None]]  # called with each URL before it is requested; raises to refuse it


class UrlRefused(ClientInputError):
    """A client's URL the policy refused or could not read; ``rule`` says which rule."""

    code = "invalid_url"

    def __init__(self, rule: str, message: str, *, upstream_status: int | None = None):
        super().__init__(message, upstream_status=upstream_status)
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Fetched:
    content: bytes
    content_type: str  # as the server (or the data: URL) declared it, without parameters
    url: str  # the last hop's
    status: int = 200  # the last hop's HTTP status: 2xx, or a redirect not followed


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@functools.cache
def networks_of(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def is_allowed_network(address: Address) -> bool:
    return any(address.version == network.version and address in network
               for network in networks_of(tuple(settings.OUTBOUND_ALLOWED_NETWORKS)))


def is_public(address: Address) -> bool:
    """Whether the gateway may connect to ``address`` (an operator's allowed network counts)."""
    if is_allowed_network(address):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
    return address.is_global and not address.is_multicast


def is_allowed_host(host: str, port: int) -> bool:
    allowed = {entry.lower() for entry in settings.OUTBOUND_ALLOWED_HOSTS}
    return host in allowed or f"{host}:{port}" in allowed


def parts_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL the policy may fetch, else UrlRefused."""
    try:
        url.encode()  # a lone surrogate (from a client, or a redirect's undecodable Location) is no URL
        split = urlsplit(url)
        host, port = (split.hostname or "").lower(), split.port
    except ValueError as exc:  # UnicodeEncodeError among them
        raise UrlRefused("url", f"{url[:200]!r} is not a valid URL ({exc}).") from exc
    if split.scheme not in ("https", "http") or not host:
        raise UrlRefused("scheme", f"{url[:200]!r} is not an https:// URL; the gateway fetches only https:// URLs.")
    port = port or (443 if split.scheme == "https" else 80)
    if split.scheme == "http" and not is_allowed_host(host, port):
        raise UrlRefused("scheme", f"{url[:200]!r} is plain http; the gateway fetches only https:// URLs.")
    if split.username or split.password:
        raise UrlRefused("url", "URLs with a user name or password are not fetched; remove the credentials.")
    return split.scheme, host, port


async def resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused("host", f"The host {host!r} could not be resolved ({exc}).") from exc
    # An IPv6 scope (fe80::1%eth0) is dropped: the address alone decides, and link-local is refused.
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


async def checked_addresses(url: str) -> tuple[str, int, list[Address]]:
    """The URL's host and port and the addresses to connect to, each one checked."""
    _, host, port = parts_of(url)
    addresses = await resolve(host, port)
    if not is_allowed_host(host, port):
        for address in addresses:
            if not is_public(address):
                # Not the address itself: a refusal must not tell a client what an internal name resolves to.
                raise UrlRefused("address", f"{host} resolves to an address that is not a public internet address; "
                                 "the gateway fetches only public https:// URLs.")
    if not addresses:
        raise UrlRefused("host", f"The host {host!r} has no address.")
    return host, port, addresses


async def check_url(url: str) -> None:
    """At admission: UrlRefused unless ``url`` is a data: URL within the size cap or an https URL
    whose host resolves to public addresses only."""
    if url.startswith("data:"):
        decode_data_url(url)
        return
    _, host, port = parts_of(url)
    if not is_allowed_host(host, port):  # a host the operator trusts is not looked up twice
        await checked_addresses(url)


def decode_data_url(url: str, max_bytes: int | None = None) -> Fetched:
    limit = max_bytes or settings.OUTBOUND_MAX_BYTES
    header, comma, data = url.partition(",")
    if not comma:
        raise UrlRefused("url", "A data: URL needs a comma before its data (data:image/png;base64,...).")
    if len(data) * 3 // 4 > limit:
        raise UrlRefused("size", f"The data: URL holds more than {limit} bytes, the most the gateway takes.")
    media_type = header[len("data:"):].split(";")[0] or "text/plain"
    if not header.endswith(";base64"):
        return Fetched(data.encode(), media_type, "data:")
    try:
        return Fetched(base64.b64decode(data, validate=True), media_type, "data:")
    except (binascii.Error, ValueError) as exc:
        raise UrlRefused("url", "The data: URL is not valid base64.") from exc


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver for one fetch: answers only the addresses policy checked for a host."""

    def __init__(self) -> None:
        self.pinned: dict[tuple[str, int], list[Address]] = {}

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        addresses = self.pinned.get((host.lower(), port))
        if not addresses:
            raise OSError(f"{host}:{port} was not checked by the outbound-fetch policy")
        return [ResolveResult(hostname=host, host=str(address), port=port,
                              family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for address in addresses]

    async def close(self) -> None:
        pass


async def fetch(url: str, *, max_bytes: int | None = None, before_hop: Hop | None = None, method: str = "GET",
                body: bytes | None = None, headers: dict[str, str] | None = None,
                time_limit: float | None = None) -> Fetched:
    """The body of a client's URL under the policy (module docstring), else UrlRefused. With
    ``method`` "POST", ``body`` and ``headers`` are sent to each hop; ``time_limit`` (seconds, the
    whole fetch) defaults to OUTBOUND_TIMEOUT_SECONDS."""
    if method == "GET" and url.startswith("data:"):
        return decode_data_url(url, max_bytes)
    limit = max_bytes or settings.OUTBOUND_MAX_BYTES
    seconds = time_limit or settings.OUTBOUND_TIMEOUT_SECONDS
    resolver = PinnedResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, force_close=True)
    try:
        async with asyncio.timeout(seconds), aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            return await follow(session, resolver, url, limit, before_hop,
                                method=method, body=body, headers=headers or {})
    except TimeoutError as exc:
        raise UrlRefused("time", f"Reading {url[:200]} took longer than {seconds:g}s.") from exc
    except aiohttp.ClientError as exc:
        raise UrlRefused("unreachable", f"Could not read {url[:200]} ({type(exc).__name__}).") from exc


async def follow(session: aiohttp.ClientSession, resolver: PinnedResolver, url: str, limit: int,
                 before_hop: Hop | None = None, *, method: str = "GET", body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Fetched:
    followed = REDIRECTS if method == "GET" else BODY_KEEPING_REDIRECTS
    sent = {"User-Agent": "Tollgate-fetch/1", **(headers or {})}
    for _ in range(settings.OUTBOUND_MAX_REDIRECTS + 1):
        host, port, addresses = await checked_addresses(url)
        if before_hop is not None:
            await before_hop(url)
        resolver.pinned[(host, port)] = addresses
        async with session.request(method, url, data=body, allow_redirects=False, headers=sent) as response:
            location = response.headers.get("Location")
            if response.status in followed and location:
                url = urljoin(url, location)
                continue
            if response.status >= 400:
                raise UrlRefused("status", f"{url[:200]} answered HTTP {response.status}.",
                                 upstream_status=response.status)
            return Fetched(await read_capped(response, limit), response.content_type, url, response.status)
    raise UrlRefused("redirects", f"{url[:200]} redirects more than {settings.OUTBOUND_MAX_REDIRECTS} times.")


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    if (response.content_length or 0) > limit:
        raise UrlRefused("size", f"{response.url} is {response.content_length} bytes; the most the gateway reads "
                         f"is {limit}.")
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            raise UrlRefused("size", f"{response.url} is larger than {limit} bytes, the most the gateway reads.")
    return bytes(body)
