"""Who sent a request, behind reverse proxies we trust.

``client_address(request)`` is the one place an address is read: the login throttles call it,
and django-ratelimit's "ip" key reaches it through RATELIMIT_IP_META_KEY (sign-up, password
reset). X-Forwarded-For is believed only as far as TRUSTED_PROXIES vouch for it: read from the
right (the nearest hop), each hop appended by a trusted proxy is skipped, and the first address
that is not a trusted proxy is the client. Anything to its left was written by the client and
proves nothing. Without TRUSTED_PROXIES the header is ignored and REMOTE_ADDR is the client.

``public_base_url(request)`` is the gateway's own URL as the client reached it, for the links the
gateway writes (upgrade hints, Stripe's return URLs, invitations): PUBLIC_BASE_URL when the
operator set it, else the request's scheme and host (X-Forwarded-Proto and X-Forwarded-Host only
as far as TRUST_X_FORWARDED_PROTO and USE_X_FORWARDED_HOST believe them; the host is one of
ALLOWED_HOSTS, or the request never got this far).
"""

import ipaddress

from django.conf import settings

UNKNOWN = "0.0.0.0"


def parse_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: plain, "[v6]:port" or "v4:port"; None if it is none."""
    value = value.strip()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_trusted_proxy(address) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXIES)


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or the nearest untrusted hop of X-Forwarded-For when
    REMOTE_ADDR is a trusted proxy. A peer without an address (a Unix socket) is a local proxy
    when TRUSTED_PROXIES is set."""
    remote = parse_address(request.META.get("REMOTE_ADDR", ""))
    if remote is not None and not is_trusted_proxy(remote):
        return str(remote)
    if remote is None and not settings.TRUSTED_PROXIES:
        return UNKNOWN
    nearest = remote
    hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    for hop in reversed(hops):
        if not hop.strip():
            continue
        address = parse_address(hop)
        if address is None:  # garbage from the client's side: the hop before it is all we know
            break
        nearest = address
        if not is_trusted_proxy(address):
            break
    return str(nearest) if nearest is not None else UNKNOWN


# What request.scheme and request.get_host() read, by the settings that say how: the URL they
# make, once per distinct answer (validating a host against ALLOWED_HOSTS took 13 µs a request).
HOST_META = ("HTTP_HOST", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT", "SERVER_NAME", "SERVER_PORT")
BASE_URLS_KEPT = 256
_base_urls: dict[tuple, str] = {}


def public_base_url(request) -> str:
    """The gateway's URL as this request reached it, without a trailing slash."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL.rstrip("/")
    meta = request.META
    proxy_ssl = settings.SECURE_PROXY_SSL_HEADER
    scope = getattr(request, "scope", None)  # an ASGI request's scheme is its scope's
    read = (scope.get("scheme") if scope is not None else meta.get("wsgi.url_scheme"),
            proxy_ssl, meta.get(proxy_ssl[0]) if proxy_ssl else None, *(meta.get(name) for name in HOST_META),
            tuple(settings.ALLOWED_HOSTS), settings.USE_X_FORWARDED_HOST, settings.USE_X_FORWARDED_PORT,
            settings.DEBUG)
    url = _base_urls.get(read)
    if url is None:
        url = f"{request.scheme}://{request.get_host()}".rstrip("/")  # DisallowedHost: never kept
        if len(_base_urls) >= BASE_URLS_KEPT:
            _base_urls.clear()
        _base_urls[read] = url
    return url
