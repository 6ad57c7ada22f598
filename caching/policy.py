"""Who decides whether a request is answered from the cache, and what the answer says about it.

    plan        Plan.cache_enabled (and semantic_cache_enabled): may the tenant cache at all
    tenant      TenantCache: on or off, TTL, any temperature, semantic   (no row: off)
    key         KeyCache: the key's own on or off                         (no row: as the tenant)
    request     x-tollgate-cache: on | off, x-tollgate-cache-ttl: <seconds>,
                Cache-Control: no-store (neither read nor stored) | no-cache (not read, stored)

``decide`` combines them into a Decision; a request the cache does not read is a bypass, and
its reason (BYPASS_REASONS, a fixed set: also a metrics label) goes back in a response header.
"""

from dataclasses import dataclass

from django.conf import settings

from caching.models import DEFAULT_TTL_SECONDS

BYPASS_REASONS = ("not-on-plan", "disabled", "off", "no-store", "no-cache", "not-deterministic", "web-search",
                  "gateway-tools")
MODES = ("on", "off")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """A key's cache settings: its tenant's, with the key's own on or off where it has one."""

    enabled: bool = False
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    any_temperature: bool = False
    semantic: bool = False


OFF = CachePolicy()


def ttl_too_long(ttl: int) -> str | None:
    """What is wrong with a tenant's TTL setting (the dashboard's and the API's check), or None."""
    if ttl > settings.CACHE_MAX_TTL_SECONDS:
        return f"At most {settings.CACHE_MAX_TTL_SECONDS} seconds."
    return None


def policy_of(tenant_cache, key_cache) -> CachePolicy:
    """The policy from a TenantCache row and a KeyCache row (either may be None)."""
    if tenant_cache is None:
        tenant = OFF
    else:
        tenant = CachePolicy(enabled=tenant_cache.enabled, ttl_seconds=tenant_cache.ttl_seconds,
                             any_temperature=tenant_cache.any_temperature, semantic=tenant_cache.semantic)
    if key_cache is None:
        return tenant
    return CachePolicy(enabled=key_cache.enabled, ttl_seconds=tenant.ttl_seconds,
                       any_temperature=tenant.any_temperature, semantic=tenant.semantic)


@dataclass(frozen=True, slots=True)
class CacheDirectives:
    """What one request asked of the cache (read from its headers by the HTTP edge)."""

    mode: str = ""  # "on" | "off" | "" (as the key's settings)
    ttl_seconds: int | None = None
    no_store: bool = False
    no_cache: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    read: bool  # look the request up (and answer a hit from the cache)
    write: bool  # keep its answer
    ttl_seconds: int = 0  # the oldest answer served, and how long a new one is kept
    semantic: bool = False  # also look up requests that mean nearly the same
    bypass: str = ""  # why the cache was not read (one of BYPASS_REASONS)


def bypass(reason: str) -> Decision:
    return Decision(read=False, write=False, bypass=reason)


def decide(policy: CachePolicy, directives: CacheDirectives, *, on_plan: bool, semantic_on_plan: bool,
           deterministic: bool, max_ttl_seconds: int) -> Decision:
    """Whether to read and write the cache for one request (module docstring, in that order)."""
    if not on_plan:
        return bypass("not-on-plan")
    if directives.mode == "off":
        return bypass("off")
    if directives.mode != "on" and not policy.enabled:
        return bypass("disabled")
    if directives.no_store:
        return bypass("no-store")
    if not deterministic and not policy.any_temperature:
        return bypass("not-deterministic")
    ttl = min(directives.ttl_seconds or policy.ttl_seconds, max_ttl_seconds)
    semantic = policy.semantic and semantic_on_plan
    if directives.no_cache:
        return Decision(read=False, write=True, ttl_seconds=ttl, semantic=semantic, bypass="no-cache")
    return Decision(read=True, write=True, ttl_seconds=ttl, semantic=semantic)


@dataclass(frozen=True, slots=True)
class CacheStatus:
    """What the cache did for a request, as its response headers say:

        x-tollgate-cache: hit | miss | bypass
        x-tollgate-cache-match: exact | semantic        (a hit)
        age: <seconds since the answer was stored>      (a hit)
        x-tollgate-cache-reason: <why>                   (a bypass: one of BYPASS_REASONS)
    """

    result: str  # "hit" | "miss" | "bypass"
    reason: str = ""
    match: str = ""
    age_seconds: int = 0

    def headers(self) -> dict[str, str]:
        headers = {"x-tollgate-cache": self.result}
        if self.result == "hit":
            headers.update({"x-tollgate-cache-match": self.match, "age": str(self.age_seconds)})
        elif self.reason:
            headers["x-tollgate-cache-reason"] = self.reason
        return headers
