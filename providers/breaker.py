"""Circuit breakers, one per deployment (provider + upstream model).

    closed     calls go through; failures in the last BREAKER_WINDOW_SECONDS are counted
    open       after BREAKER_FAILURES of them: skipped for BREAKER_COOLDOWN_SECONDS
    half-open  after the cool-down one call (the probe) goes through; its success closes the
               breaker, its failure opens it for another cool-down

Only failures that say the deployment is unwell count (rate limited, unavailable, timeouts,
our credential refused): a client's bad request says nothing about the provider.

Each process keeps the state in memory. With REDIS_URL set, the workers share it: failures
are counted in Redis, an open breaker is a Redis key every worker sees (each checks it at most
once a second per deployment, so the hot path does not pay a round trip per call), and the
probe after a cool-down is one worker's alone (SET NX).

Each provider attempt reports to its breaker through a Verdict.
"""

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from django.conf import settings
from redis.exceptions import RedisError

from providers import errors, tracing
from providers import metrics as provider_metrics
from providers.types import Target

log = logging.getLogger(__name__)

REMOTE_CHECK_SECONDS = 1.0
PREFIX = "tollgate:breaker:"


@dataclass(slots=True)
class BreakerState:
    failures: deque[float] = field(default_factory=deque)
    open_until: float = 0.0  # monotonic
    probing: bool = False
    remote_checked: float = 0.0


_states: dict[str, BreakerState] = {}
_redis: dict[tuple[asyncio.AbstractEventLoop, str], object] = {}  # by event loop and REDIS_URL
_redis_down_until = [0.0]
REDIS_RETRY_SECONDS = 10.0


def redis_failed(exc: Exception) -> None:
    """Redis did not answer: go local for a while rather than fail every request."""
    log.warning("circuit breakers: Redis unavailable (%s); each worker on its own for %.0fs", exc,
                REDIS_RETRY_SECONDS)
    _redis_down_until[0] = time.monotonic() + REDIS_RETRY_SECONDS


def key_of(provider: str, upstream_model: str) -> str:
    return f"{provider}:{upstream_model}"


def counts(error: errors.ProviderError) -> bool:
    return error.retryable or isinstance(error, errors.ProviderAuthFailed | errors.ProviderStreamBroken)


def shared():
    """The Redis client of this event loop, or None without REDIS_URL (or while it is down:
    then each worker falls back on what it knows itself)."""
    if not settings.REDIS_URL or time.monotonic() < _redis_down_until[0]:
        return None
    key = (asyncio.get_running_loop(), settings.REDIS_URL)
    client = _redis.get(key)
    if client is None:
        import redis.asyncio

        client = _redis[key] = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    return client


def open_locally(key: str, state: BreakerState, seconds: float) -> None:
    provider_metrics.record_breaker(key, provider_metrics.OPEN)
    state.failures.clear()
    state.probing = False
    state.open_until = time.monotonic() + seconds


async def allows(key: str | None) -> bool:
    """May a call go to this deployment now? Claims the probe when the cool-down is over.
    (No key: a call outside the shared breakers, always allowed.)"""
    if key is None:
        return True
    state = _states.setdefault(key, BreakerState())
    now = time.monotonic()
    redis = shared()
    if redis is not None and now - state.remote_checked >= REMOTE_CHECK_SECONDS:
        state.remote_checked = now
        try:
            ttl = await redis.pttl(PREFIX + "open:" + key)
            if ttl > 0:
                state.open_until = max(state.open_until, now + ttl / 1000)
            elif state.open_until == 0.0 and await redis.exists(PREFIX + "halfopen:" + key):
                state.open_until = now  # another worker opened it and its cool-down is over
        except (RedisError, OSError) as exc:
            redis_failed(exc)
            redis = None
    if state.open_until == 0.0:
        return True
    if now < state.open_until or state.probing:
        return False
    try:
        if redis is not None and not await redis.set(PREFIX + "probe:" + key, "1", nx=True,
                                                     ex=int(settings.BREAKER_COOLDOWN_SECONDS) + 30):
            return False  # another worker is probing
    except (RedisError, OSError) as exc:
        redis_failed(exc)
    state.probing = True  # the one call that decides
    provider_metrics.record_breaker(key, provider_metrics.HALF_OPEN)
    return True


async def record_success(key: str | None) -> None:
    state = _states.get(key) if key is not None else None
    if state is not None and (state.open_until or state.failures):
        state.failures.clear()
        if state.open_until:
            provider_metrics.record_breaker(key, provider_metrics.CLOSED)
        state.open_until, state.probing = 0.0, False
        redis = shared()
        if redis is not None:
            try:
                await redis.delete(*(PREFIX + part + key for part in ("open:", "halfopen:", "probe:", "fail:")))
            except (RedisError, OSError) as exc:
                redis_failed(exc)


async def record_failure(key: str | None) -> None:
    if key is None:
        return
    now = time.monotonic()
    state = _states.setdefault(key, BreakerState())
    cooldown = settings.BREAKER_COOLDOWN_SECONDS
    redis = shared()
    if state.probing:  # the probe failed: another cool-down
        try:
            await open_everywhere(redis, key, state, cooldown)
        except (RedisError, OSError) as exc:
            redis_failed(exc)
        return
    if redis is not None:
        state.failures.append(now)  # so that a success here clears the shared count
        try:
            failures = await redis.incr(PREFIX + "fail:" + key)
            if failures == 1:
                await redis.expire(PREFIX + "fail:" + key, int(settings.BREAKER_WINDOW_SECONDS) or 1)
            if failures >= settings.BREAKER_FAILURES:
                await open_everywhere(redis, key, state, cooldown)
            return
        except (RedisError, OSError) as exc:
            redis_failed(exc)
            state.failures.pop()
    state.failures.append(now)
    while state.failures and state.failures[0] < now - settings.BREAKER_WINDOW_SECONDS:
        state.failures.popleft()
    if len(state.failures) >= settings.BREAKER_FAILURES:
        open_locally(key, state, cooldown)


async def open_everywhere(redis, key: str, state: BreakerState, cooldown: float) -> None:
    open_locally(key, state, cooldown)
    if redis is not None:
        milliseconds = max(1, int(cooldown * 1000))
        await redis.set(PREFIX + "open:" + key, "1", px=milliseconds)
        await redis.set(PREFIX + "halfopen:" + key, "1", px=milliseconds + 600_000)
        await redis.delete(PREFIX + "fail:" + key, PREFIX + "probe:" + key)


async def release_probe(key: str | None) -> None:
    """A probe that ended without a verdict (the client left): let the next call probe."""
    state = _states.get(key) if key is not None else None
    if state is not None and state.probing:
        state.probing = False
        redis = shared()
        if redis is not None:
            try:
                await redis.delete(PREFIX + "probe:" + key)
            except (RedisError, OSError) as exc:
                redis_failed(exc)


def cooldowns() -> dict[str, float]:
    """Open breakers of this process and the seconds left of their cool-down."""
    now = time.monotonic()
    return {key: state.open_until - now for key, state in _states.items() if state.open_until > now}


async def close() -> None:
    """Close this event loop's Redis clients (at shutdown)."""
    loop = asyncio.get_running_loop()
    for key in [key for key in _redis if key[0] is loop]:
        await _redis.pop(key).aclose()


def reset() -> None:
    """Forget this process's state (the shared state, if any, stays in Redis)."""
    _states.clear()
    _redis_down_until[0] = 0.0


class Verdict:
    """One call's report to its deployment's circuit breaker: a failure that says the provider
    is unwell, or anything else the provider answered (success); a call that ends with neither
    (the client left) hands back a probe it may hold. Also the attempt's metrics and trace span."""

    def __init__(self, key: str | None, target: Target):
        self.key = key
        self.given = False
        self.target = target
        self.kind = "cancelled"  # until the provider answers: "ok", or the error's kind
        self.span = tracing.start_span("provider.attempt", provider=target.provider,
                                       upstream_model=target.upstream_model)

    async def failed(self, error: errors.ProviderError) -> None:
        self.kind = type(error).__name__
        if error.client_caused:
            return  # the client's input failed, not the provider: no verdict (close() hands back a probe)
        self.given = True
        if counts(error):
            await record_failure(self.key)
        else:
            await record_success(self.key)  # it answered, if only to refuse the request

    async def succeeded(self) -> None:
        self.kind = "ok"
        self.given = True
        await record_success(self.key)

    async def close(self) -> None:
        provider_metrics.record_attempt(self.target, self.kind)
        if self.kind != "ok":
            tracing.failed(self.span, self.kind)
        self.span.set_attribute("result", self.kind)
        self.span.end()
        if not self.given:
            await release_probe(self.key)
