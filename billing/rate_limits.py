"""The rate limits of an API key: requests and tokens per minute, and requests in flight.

    requests per minute   the plan's requests_per_minute                      429 rate_limit_exceeded
    tokens per minute     the plan's tokens_per_minute and the key's own      429 rate_limit_exceeded
    requests in flight    the plan's max_concurrent_requests and the key's    429 concurrency_limit_exceeded
                          own (of each pair the lower wins; none = no limit)

    await check_requests(caller)            the request rate alone (a cached answer, a token count)
    await admit_rates(caller, tokens=n)     all three, at admission: a RateHold, kept on the request's
                                            reservation until it settles (settled_if_refused: given
                                            back if a later step of admission refuses)
    settle_rates(hold, tokens=n)            at settlement (the meter's exit), once: the tokens used
                                            replace the tokens taken, and the request leaves those
                                            in flight

Every key has its own counts (the playground's calls one per tenant), in fixed minutes staggered
by key. Tokens are taken at admission at the request's bound (billing.admission: its prompt's
bytes, which no tokenizer exceeds, plus the most output it may produce), at most the whole limit,
so a request larger than the limit waits for a fresh minute rather than never passing. Settlement
gives what a request did not use back to the minute it was taken in, while that runs, and charges
what it used beyond it to the current one. A stream is in flight until its last event.

Answers carry the windows as OpenAI sends them (x-ratelimit-{limit,remaining,reset}-{requests,
tokens}), refusals Retry-After too. The counts are this process's without REDIS_URL, and Redis's,
taken in slices, with it (billing.rate_slices).
"""

import asyncio
import math
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from billing.rate_counts import Counts, LocalCounts, Window, window_of
from billing.rate_slices import SlicedCounts
from billing.refusals import Refusal, upgrade_hint

if TYPE_CHECKING:
    from billing.entitlements import Caller

PERIOD = 60  # seconds: per minute
CONCURRENCY_RETRY_SECONDS = 1
clock = time.time  # wall-clock seconds (a window is the same minute on every node); tests replace it

_local = LocalCounts()
_sliced: dict[asyncio.AbstractEventLoop, SlicedCounts] = {}
_closing: set[asyncio.Task] = set()


def counts() -> Counts:
    """This process's counts, or with REDIS_URL this event loop's slices of Redis's."""
    if not settings.REDIS_URL:
        return _local
    loop = asyncio.get_running_loop()
    found = _sliced.get(loop)
    if found is None or found.url != settings.REDIS_URL:
        if found is not None:  # REDIS_URL changed (tests): close the old connections
            closing = loop.create_task(found.close())
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
        for stale in [other for other in _sliced if other.is_closed()]:
            del _sliced[stale]
        found = _sliced[loop] = SlicedCounts(settings.REDIS_URL)
    return found


def reset() -> None:
    """Forget every count this process holds (tests: each starts with fresh windows)."""
    _local.clear()
    for sliced in _sliced.values():
        sliced.forget()


@dataclass(frozen=True, slots=True)
class Limit:
    value: int
    owner: str  # whose it is, for a refusal: "plan Pro" or "API key 'backend'"


def lower_of(caller: "Caller", plan_value: int | None, key_value: int | None) -> Limit | None:
    if key_value is not None and (plan_value is None or key_value < plan_value):
        return Limit(key_value, f"API key '{caller.key_name}'")
    return None if plan_value is None else Limit(plan_value, f"plan {caller.plan.name}")


def tokens_limit(caller: "Caller") -> Limit | None:
    return lower_of(caller, caller.plan.tokens_per_minute, caller.key_tokens_per_minute)


def concurrency_limit(caller: "Caller") -> Limit | None:
    return lower_of(caller, caller.plan.max_concurrent_requests, caller.key_max_concurrent_requests)


def key_of(caller: "Caller") -> str:
    # Keyless playground calls share one count per tenant, at the plan's per-key limits.
    return str(caller.key_id) if caller.key_id is not None else f"playground-{caller.tenant_id}"


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a key stands in one window, as the x-ratelimit-*-<unit> headers say it."""

    limit: int
    remaining: int
    reset_seconds: int

    def headers(self, unit: str) -> dict[str, str]:
        return {f"x-ratelimit-limit-{unit}": str(self.limit),
                f"x-ratelimit-remaining-{unit}": str(self.remaining),
                f"x-ratelimit-reset-{unit}": f"{self.reset_seconds}s"}


def standing(limit: int, used: int, window: Window) -> Standing:
    return Standing(limit, max(0, limit - used), max(1, math.ceil(window.ends - clock())))


@dataclass(slots=True)
class TokensTaken:
    counts: Counts
    name: str
    window: Window
    amount: int


@dataclass(slots=True)
class RateHold:
    """What admission took of a key's rate limits for one request, and where it stands."""

    requests: Standing
    tokens: Standing | None = None  # with a tokens-per-minute limit
    taken: TokensTaken | None = None
    slot: tuple[Counts, str] | None = None  # with a concurrency limit: the counts and gauge it holds
    settled: bool = False

    def headers(self) -> dict[str, str]:
        headers = self.requests.headers("requests")
        if self.tokens is not None:
            headers.update(self.tokens.headers("tokens"))
        return headers


async def check_requests(caller: "Caller") -> RateHold:
    """Count one request in the key's minute: 429 + Retry-After past the plan's rate."""
    limit = caller.plan.requests_per_minute
    name = f"requests:{key_of(caller)}"
    window = window_of(name, PERIOD, clock())
    taken = await counts().take(name, window, 1, limit)
    now = standing(limit, taken.used, window)
    if not taken.ok:
        raise Refusal(429, f"Rate limit reached: plan {caller.plan.name} allows {limit} requests per minute. "
                      f"Retry in {now.reset_seconds}s, or {upgrade_hint(caller)} for a higher limit.",
                      type="rate_limit_error", code="rate_limit_exceeded", retry_after=now.reset_seconds,
                      headers=now.headers("requests"))
    return RateHold(requests=now)


async def admit_rates(caller: "Caller", *, tokens: int) -> RateHold:
    """The request rate, then ``tokens`` (the request's bound) against the key's tokens per minute,
    then a place among its requests in flight. Settle the hold once the request ends."""
    hold = await check_requests(caller)
    try:
        limit = tokens_limit(caller)
        if limit is not None:
            await take_tokens(caller, hold, limit, tokens)
        limit = concurrency_limit(caller)
        if limit is not None:
            await take_slot(caller, hold, limit)
    except BaseException:
        settle_rates(hold, tokens=0)
        raise
    return hold


async def take_tokens(caller: "Caller", hold: RateHold, limit: Limit, tokens: int) -> None:
    need = min(tokens, limit.value)
    name = f"tokens:{key_of(caller)}"
    window = window_of(name, PERIOD, clock())
    taken = await counts().take(name, window, need, limit.value)
    hold.tokens = now = standing(limit.value, taken.used, window)
    if not taken.ok:
        raise Refusal(429, f"Rate limit reached on tokens per minute (TPM): {limit.owner} allows {limit.value}, "
                      f"{limit.value - now.remaining} are used or held this minute, and this request may use up "
                      f"to {tokens} (its prompt and max_tokens). Retry in {now.reset_seconds}s, lower max_tokens, "
                      f"or {upgrade_hint(caller)} for a higher limit.", type="rate_limit_error",
                      code="rate_limit_exceeded", retry_after=now.reset_seconds, headers=hold.headers())
    hold.taken = TokensTaken(taken.counts, name, window, need)


async def take_slot(caller: "Caller", hold: RateHold, limit: Limit) -> None:
    name = f"concurrent:{key_of(caller)}"
    taken = await counts().acquire(name, limit.value)
    if not taken.ok:
        raise Refusal(429, f"Too many requests in flight: {limit.owner} allows {limit.value} at once per API key, "
                      f"and {limit.value} are in progress (a stream until its last event). Retry when one ends, "
                      f"or {upgrade_hint(caller)} for a higher limit.", type="rate_limit_error",
                      code="concurrency_limit_exceeded", retry_after=CONCURRENCY_RETRY_SECONDS,
                      headers=hold.headers())
    hold.slot = (taken.counts, name)


def settle_rates(hold: RateHold | None, *, tokens: int) -> None:
    """The request ended having used ``tokens`` (input and output): the difference from what was
    taken is given back to (or charged to) the key's minute, and its place in flight is freed.
    Once per hold; never raises, never waits (the meter's exit calls it)."""
    if hold is None or hold.settled:
        return
    hold.settled = True
    taken = hold.taken
    if taken is not None and tokens != taken.amount:
        difference = tokens - taken.amount
        window = taken.window if difference < 0 else window_of(taken.name, PERIOD, clock())
        taken.counts.add(taken.name, window, difference)
    if hold.slot is not None:
        held_in, name = hold.slot
        held_in.release(name)


@asynccontextmanager
async def settled_if_refused(hold: RateHold):
    """Around the admission steps after admit_rates: if one raises (the spend cap refused, the
    client left), the request used nothing and leaves the ones in flight."""
    try:
        yield
    except BaseException:
        settle_rates(hold, tokens=0)
        raise
