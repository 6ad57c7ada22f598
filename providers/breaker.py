"""Circuit breakers, one per deployment (provider + upstream model), in this process.

    closed     calls go through; failures in the last BREAKER_WINDOW_SECONDS are counted
    open       after BREAKER_FAILURES of them: skipped for BREAKER_COOLDOWN_SECONDS
    half-open  after the cool-down one call (the probe) goes through; its success closes the
               breaker, its failure opens it for another cool-down

Only failures that say the deployment is unwell count (rate limited, unavailable, timeouts):
a client's bad request says nothing about the provider. The state lives in this process; each
worker learns on its own (a few failed calls per worker at most, each falling back).
"""

import time
from collections import deque
from dataclasses import dataclass, field

from django.conf import settings

from providers import errors


@dataclass(slots=True)
class BreakerState:
    failures: deque[float] = field(default_factory=deque)
    open_until: float = 0.0
    probing: bool = False


_states: dict[str, BreakerState] = {}


def key_of(provider: str, upstream_model: str) -> str:
    return f"{provider}:{upstream_model}"


def counts(error: errors.ProviderError) -> bool:
    return error.retryable or isinstance(error, errors.ProviderAuthFailed)


def allows(key: str) -> bool:
    """May a call go to this deployment now? Claims the probe when the cool-down is over."""
    state = _states.get(key)
    if state is None or state.open_until == 0.0:
        return True
    if time.monotonic() < state.open_until or state.probing:
        return False
    state.probing = True  # the one call that decides
    return True


def record_success(key: str) -> None:
    state = _states.get(key)
    if state is not None:
        state.failures.clear()
        state.open_until, state.probing = 0.0, False


def record_failure(key: str) -> None:
    now = time.monotonic()
    state = _states.setdefault(key, BreakerState())
    if state.probing:  # the probe failed: another cool-down
        state.probing = False
        state.open_until = now + settings.BREAKER_COOLDOWN_SECONDS
        return
    state.failures.append(now)
    while state.failures and state.failures[0] < now - settings.BREAKER_WINDOW_SECONDS:
        state.failures.popleft()
    if len(state.failures) >= settings.BREAKER_FAILURES:
        state.failures.clear()
        state.open_until = now + settings.BREAKER_COOLDOWN_SECONDS


def release_probe(key: str) -> None:
    """A probe that ended without a verdict (the client left): let the next call probe."""
    state = _states.get(key)
    if state is not None:
        state.probing = False


def cooldowns() -> dict[str, float]:
    """Open breakers and the seconds left of their cool-down (for the admin and health checks)."""
    now = time.monotonic()
    return {key: state.open_until - now for key, state in _states.items() if state.open_until > now}


def reset() -> None:
    _states.clear()
