"""Issue, authenticate and revoke tenant API keys.

A raw key is ``tg-<prefix>-<secret>``. The database keeps ``prefix`` (indexed, for lookup)
and HMAC-SHA256(API_KEY_PEPPER, raw key), compared in constant time. The raw key exists
only in the answer to whoever created it.

Authentication serves a key's tenant and plan from process memory for KEY_CACHE_SECONDS, so
the hot path costs no query after warm-up: requests that miss at once share one read, and a key
in use is read again in the background before its entry expires (providers/read_ahead.py). A key revoked
through revoke_api_key() stops working at once in this process and within KEY_CACHE_SECONDS in
every other worker.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.entitlements import Refusal
from billing.models import Plan, Subscription, SubscriptionStatus
from caching.policy import OFF, CachePolicy, policy_of
from gateway.models import ApiKey, Tenant, TenantProviderKey, default_key_scopes
from gateway.proxies import public_base_url
from providers.read_ahead import ReadAhead

KEY_PREFIX = "tg"
CACHE_MAX_ENTRIES = 10_000
LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyLimitReached(Exception):
    pass


@dataclass(frozen=True, slots=True)
class IssuedKey:
    api_key: ApiKey
    raw: str  # show once, never store


@dataclass(slots=True)
class KeyContext:
    """What the hot path needs about a key, its tenant and plan: a snapshot, not live rows."""

    key_id: int
    key_name: str
    hashed: str
    allowed_models: tuple[str, ...]
    scopes: tuple[str, ...]
    expires_at: datetime | None
    revoked: bool
    tenant_id: int
    tenant_slug: str
    plan: Plan
    subscription_status: str
    last_used_at: datetime | None
    provider_keys: dict[str, str] = field(default_factory=dict, repr=False)  # the tenant's own, decrypted
    cache: CachePolicy = OFF  # the tenant's answer-cache settings, with the key's own switch
    tokens_per_minute: int | None = None  # the key's own rate limits (None: the plan's)
    max_concurrent_requests: int | None = None


def hash_key(raw: str) -> str:
    """HMAC-SHA256 of the raw key under the pepper: a copy of an HMAC already keyed with it, fed the
    key. Not ``hmac.digest``: OpenSSL's one-shot HMAC releases the GIL for any input, and the
    event loop's thread then waits for the ledger writer's to give it back (45 us a request
    under load, where the hash itself takes 2)."""
    keyed = peppered(settings.API_KEY_PEPPER).copy()
    keyed.update(raw.encode())
    return keyed.hexdigest()


@lru_cache(maxsize=4)
def peppered(pepper: str) -> "hmac.HMAC":
    return hmac.new(pepper.encode(), digestmod=hashlib.sha256)


@transaction.atomic
def issue_api_key(tenant: Tenant, *, name: str, created_by=None, expires_at: datetime | None = None,
                  allowed_models: list[str] | None = None, scopes: list[str] | None = None,
                  tokens_per_minute: int | None = None, max_concurrent_requests: int | None = None) -> IssuedKey:
    """A new key of ``tenant``, within the plan's max_keys; ``scopes`` default to ['inference'];
    its own rate limits (None: the plan's) as set_key_rate_limits."""
    # The subscription row, locked: two keys issued at once cannot both take the last free place.
    plan = Subscription.objects.select_for_update().select_related("plan").get(tenant=tenant).plan
    active = ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True).count()
    if active >= plan.max_keys:
        raise KeyLimitReached(
            f"Tenant {tenant.slug} has {active} active keys, the most plan {plan.name} allows. "
            "Revoke a key or upgrade the plan."
        )
    prefix = secrets.token_hex(6)
    raw = f"{KEY_PREFIX}-{prefix}-{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, hashed=hash_key(raw), created_by=created_by,
        expires_at=expires_at, allowed_models=allowed_models or [], scopes=scopes or default_key_scopes(),
        tokens_per_minute=tokens_per_minute, max_concurrent_requests=max_concurrent_requests,
    )
    return IssuedKey(api_key, raw)


KEY_RATE_LIMITS = ("tokens_per_minute", "max_concurrent_requests")


def set_key_rate_limits(api_key: ApiKey, **limits: int | None) -> None:
    """Set the key's own rate limits named in ``limits`` (of KEY_RATE_LIMITS; None: the plan's).
    Of the key's and the plan's, the lower applies (billing.rate_limits): at once in this process,
    within KEY_CACHE_SECONDS in the others."""
    unknown = set(limits) - set(KEY_RATE_LIMITS)
    if unknown:
        raise TypeError(f"not a key rate limit: {', '.join(sorted(unknown))}")
    for name, value in limits.items():
        setattr(api_key, name, value)
    api_key.save(update_fields=list(limits))
    forget_keys_on_commit([api_key.prefix])


def revoke_api_key(api_key: ApiKey) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    forget_key(api_key.prefix)


def forget_keys_on_commit(prefixes: list[str]) -> None:
    """Drop these keys from this process's cache now and again once the transaction commits: a
    request in between could otherwise cache the rows as they were before the change."""

    def forget() -> None:
        for prefix in prefixes:
            forget_key(prefix)

    forget()
    transaction.on_commit(forget)


@transaction.atomic
def revoke_keys_created_by(tenant: Tenant, user) -> list[ApiKey]:
    """Revoke every live key ``user`` created in ``tenant`` (they left it, or were removed)."""
    keys = list(ApiKey.objects.select_for_update().filter(tenant=tenant, created_by=user, revoked_at__isnull=True))
    ApiKey.objects.filter(pk__in=[key.pk for key in keys]).update(revoked_at=timezone.now())
    forget_keys_on_commit([key.prefix for key in keys])
    return keys


@transaction.atomic
def withdraw_scope_from_keys_created_by(tenant: Tenant, user, scope: str) -> list[ApiKey]:
    """Take ``scope`` from every live key ``user`` created in ``tenant``; other scopes stay."""
    keys = [key for key in ApiKey.objects.select_for_update().filter(
        tenant=tenant, created_by=user, revoked_at__isnull=True) if scope in (key.scopes or ())]
    for key in keys:
        key.scopes = [kept for kept in key.scopes if kept != scope]
        key.save(update_fields=["scopes"])
    forget_keys_on_commit([key.prefix for key in keys])
    return keys


def revoke_keys_of_deleted_user(sender, instance, **kwargs) -> None:
    """pre_delete of a user: every live key they created, in every tenant, is revoked first."""
    keys = list(ApiKey.objects.filter(created_by=instance, revoked_at__isnull=True))
    ApiKey.objects.filter(pk__in=[key.pk for key in keys]).update(revoked_at=timezone.now())
    forget_keys_on_commit([key.prefix for key in keys])


def forget_key(prefix: str) -> None:
    _contexts.forget(prefix)


def forget_keys() -> None:
    """Drop every cached key, so the next request of each reads its key, tenant and plan anew."""
    _contexts.forget_all()


async def key_context(prefix: str) -> KeyContext | None:
    """The key's context from memory (None: no such key); see providers/read_ahead.py."""
    return await _contexts.get(prefix)


def load_key_context(prefix: str) -> KeyContext | None:
    row = (
        ApiKey.objects.select_related("tenant__subscription__plan", "tenant__cache_settings", "cache_setting")
        .filter(prefix=prefix)
        .first()
    )
    if row is None:
        return None
    subscription = getattr(row.tenant, "subscription", None)
    if subscription is None:
        return None
    return KeyContext(
        key_id=row.pk, key_name=row.name, hashed=row.hashed, allowed_models=tuple(row.allowed_models or ()),
        scopes=tuple(row.scopes or ()), expires_at=row.expires_at, revoked=row.revoked_at is not None,
        tenant_id=row.tenant_id, tenant_slug=row.tenant.slug, plan=subscription.plan, subscription_status=subscription.status,
        last_used_at=row.last_used_at,
        provider_keys={key.provider: key.get_secret() for key in TenantProviderKey.objects.filter(tenant=row.tenant)},
        cache=policy_of(getattr(row.tenant, "cache_settings", None), getattr(row, "cache_setting", None)),
        tokens_per_minute=row.tokens_per_minute, max_concurrent_requests=row.max_concurrent_requests,
    )


# prefix -> its context, or None for a prefix that matches no key: remembering misses keeps a
# flood of made-up keys from costing a query each.
_contexts: ReadAhead[str, KeyContext | None] = ReadAhead(
    "API key", load_key_context, seconds=lambda: settings.KEY_CACHE_SECONDS, max_entries=CACHE_MAX_ENTRIES)


def parse_bearer(request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    # Anthropic-style clients send the key in x-api-key.
    return request.headers.get("x-api-key", "").strip()


class KeyRefused(Refusal):
    """The key does not let the request in: absent, wrong, revoked or expired (401), or its
    tenant has no subscription (403). The HTTP edge turns it into its protocol's envelope."""


def unauthorized(message: str) -> KeyRefused:
    return KeyRefused(401, message, type="invalid_request_error", code="invalid_api_key")


async def authenticate(request) -> KeyContext:
    raw = parse_bearer(request)
    if not raw:
        raise unauthorized(
            "No API key provided. Send it as 'Authorization: Bearer tg-...'; create one in the dashboard "
            "or with 'manage.py create_api_key'."
        )
    parts = raw.split("-", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise unauthorized("Incorrect API key provided: it is not a Tollgate key (they start with 'tg-').")
    context = await key_context(parts[1])
    if context is None or not hmac.compare_digest(context.hashed, hash_key(raw)):
        raise unauthorized("Incorrect API key provided.")
    if context.revoked:
        raise unauthorized(f"API key '{context.key_name}' has been revoked. Create a new key in the dashboard.")
    if context.expires_at is not None and context.expires_at <= timezone.now():
        raise unauthorized(f"API key '{context.key_name}' expired at {context.expires_at:%Y-%m-%d %H:%M} UTC.")
    if context.subscription_status == SubscriptionStatus.CANCELED:
        raise KeyRefused(403, f"Tenant {context.tenant_slug} has no active subscription. Choose a plan at "
                           f"{public_base_url(request)}/billing.", type="permission_error", code="no_subscription")
    return context


def claim_last_used(context: KeyContext) -> datetime | None:
    """The time this request writes as the key's last_used_at, or None: it is written at most once
    a minute per key per process (a write per request would cost more than the answer is worth),
    by the first request due, not by every request beside it."""
    now, last = timezone.now(), context.last_used_at
    if last is not None and now - last < LAST_USED_RESOLUTION:
        return None
    context.last_used_at = now
    return now


def touch_last_used(context: KeyContext, now: datetime) -> None:
    ApiKey.objects.filter(pk=context.key_id).update(last_used_at=now)
