"""The request headers that steer the answer cache, read into the Call's CacheDirectives:

    x-tollgate-cache: on | off            use the cache for this request, or not (whatever the key's setting)
    x-tollgate-cache-ttl: <seconds>       serve an answer at most this old, and keep this one this long
                                          (capped at CACHE_MAX_TTL_SECONDS)
    Cache-Control: no-store               neither read nor keep
    Cache-Control: no-cache               do not read, keep the fresh answer
"""

from caching.policy import MODES, CacheDirectives
from gateway.v1.errors import bad_request

MODE_HEADER = "x-tollgate-cache"
TTL_HEADER = "x-tollgate-cache-ttl"
NONE = CacheDirectives()  # a request that says nothing of the cache (most): one shared instance


def cache_directives(headers) -> CacheDirectives:
    mode = headers.get(MODE_HEADER, "").strip().lower()
    if mode and mode not in MODES:
        raise bad_request(f"The {MODE_HEADER} header is {mode!r}: send 'on' or 'off', or leave it out.",
                          code="invalid_header")
    raw_ttl = headers.get(TTL_HEADER, "").strip()
    ttl = None
    if raw_ttl:
        if not (raw_ttl.isascii() and raw_ttl.isdigit()) or len(raw_ttl) > 12 or int(raw_ttl) < 1:
            raise bad_request(f"The {TTL_HEADER} header is {raw_ttl[:40]!r}: send a whole number of seconds, 1 or "
                              "more (up to 12 digits).",
                              code="invalid_header")
        ttl = int(raw_ttl)
    control = {part.strip().lower().partition("=")[0] for part in headers.get("Cache-Control", "").split(",")}
    if not mode and ttl is None and not control & {"no-store", "no-cache"}:
        return NONE
    return CacheDirectives(mode=mode, ttl_seconds=ttl, no_store="no-store" in control,
                           no_cache="no-cache" in control)
