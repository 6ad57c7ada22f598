"""Public model id -> deployments, and the calls through them.

    call(...)         one non-streamed call (chat, image, video submission, speech, ...), retried on
                      retryable errors; call_chain(...) goes on down a fallback chain
    complete(...)     call() for a chat completion
    stream(...)       events of one streamed call, retried and falling back only until the first event

Underneath, one attempt loop and one chain walker, for answers given whole and streams alike:

    attempts(upstream, output, trace)   one call on an Upstream (a deployment, a search engine): its
                                        credentials in turn, retries, breaker verdicts, timeouts
    walk(chain, output_of, trace)       attempts on each deployment of a chain, falling back
    Output                              how an attempt produces its items; an answer given whole
                                        (whole(...)) is a stream of exactly one

Retries wait with exponential backoff and full jitter, or the provider's Retry-After when it
sent one, and never past the call's deadline. Credentials of a provider rotate round robin.
The models and their deployments are the snapshot of providers.catalog_snapshot, whose names
are importable from here too.
"""

import asyncio
import dataclasses
import itertools
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings

from providers import breaker, errors
from providers import metrics as provider_metrics
from providers.adapters.answers import UNREADABLE, checked_event, read_answer, unreadable
from providers.adapters.base import Adapter
from providers.catalog_snapshot import Catalog as Catalog
from providers.catalog_snapshot import Deployment as Deployment
from providers.catalog_snapshot import ModelInfo as ModelInfo
from providers.catalog_snapshot import forget_catalog as forget_catalog
from providers.catalog_snapshot import get_catalog as get_catalog
from providers.catalog_snapshot import load_catalog as load_catalog
from providers.catalog_snapshot import media_prices_of as media_prices_of
from providers.catalog_snapshot import model_features as model_features
from providers.silence import SilenceLimit
from providers.types import ChatRequest, ChatResult, StreamEvent, Target

T = TypeVar("T")
# What a call asks of a deployment: given its adapter and one of its targets, the result.
Operation = Callable[[Adapter, Target], Awaitable[T]]

BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0


def features_of(request: ChatRequest) -> set[str]:
    """What a chat request needs beyond plain text (names as in providers.models.FEATURES)."""
    needed = set()
    if request.tools:
        needed.add("tools")
    if request.response_format and request.response_format.get("type") in ("json_schema", "json_object"):
        needed.add("json_schema")
    if request.reasoning_effort and request.reasoning_effort != "none":
        needed.add("reasoning")
    if any(isinstance(m.content, list) and any(p.type == "image_url" for p in m.content) for m in request.messages):
        needed.add("vision")
    return needed


def check_features(request: ChatRequest, model: ModelInfo) -> None:
    """Refuse, before any call, a request using a feature the model is declared to lack."""
    missing = sorted(features_of(request) - model.features)
    if missing:
        raise errors.UnsupportedFeature(
            f"'{model.public_id}' (provider {model.provider}) does not support {', '.join(missing)}. "
            f"Remove it from the request or pick a model that has it (GET /v1/models lists each model's features).",
            provider=model.provider,
        )


@dataclass(slots=True)
class Trace:
    """How a call went: attempts made and who served the last one (sent as response headers), and
    when the provider was first called and answered (monotonic; the gateway's own overhead is the
    client's wait less that span)."""

    attempts: int = 0
    provider: str = ""
    upstream_model: str = ""
    model: ModelInfo | None = None  # the public model of the chain that was tried last
    began: float = 0.0
    answered: float = 0.0  # the whole answer, or a stream's first event

    def attempt(self, target: Target) -> None:
        self.attempts += 1
        self.provider, self.upstream_model = target.provider, target.upstream_model
        self.began = self.began or time.monotonic()


def fallback_reason(error: errors.ProviderError) -> str | None:
    """Which kind of failure this is, in the terms of Model.fallback_on."""
    if isinstance(error, errors.ProviderRateLimited):
        return "rate_limited"
    if isinstance(error, errors.ContextWindowExceeded):
        return "context_window"
    if isinstance(error, errors.ContentFiltered):
        return "content_policy"
    if isinstance(error, errors.ProviderUnavailable | errors.ProviderAuthFailed):
        return "unavailable"
    return None


SAME_MODEL_REASONS = frozenset({"rate_limited", "unavailable"})


@dataclass(frozen=True, slots=True)
class Chain:
    """The deployments to try in order, and which failures move on to the next one."""

    deployments: list[Deployment]
    fallback_on: frozenset[str]

    def moves_on(self, error: errors.ProviderError, index: int) -> bool:
        if index + 1 >= len(self.deployments):
            return False
        reason = fallback_reason(error)
        if self.deployments[index + 1].model.public_id == self.deployments[index].model.public_id:
            # Another deployment of the same model: any sign this one is unwell moves on.
            return reason in SAME_MODEL_REASONS
        return reason in self.fallback_on


def with_key(deployment: Deployment, api_key: str) -> Deployment:
    """The same deployment called with another key (a tenant's own)."""
    return Deployment(deployment.model, deployment.adapter,
                      [dataclasses.replace(deployment.targets[0], api_key=api_key)], own_key=True)


def own_key_refused(error: errors.ProviderError, deployment: Deployment) -> errors.ProviderError:
    """A tenant's own key refused is the tenant's to fix, not the operator's."""
    if deployment.own_key and isinstance(error, errors.ProviderAuthFailed):
        return errors.OwnKeyRefused(
            f"{deployment.model.provider} refused your own provider key (HTTP {error.upstream_status}). Check the key "
            "sent in x-provider-key or stored for your tenant.", provider=deployment.model.provider,
            upstream_status=error.upstream_status)
    return error


def breaker_key(deployment: Deployment) -> str | None:
    """The deployment's shared breaker, or None for a call made with a tenant's own key: that
    key's failures say nothing about ours, and our outages must not refuse it."""
    if deployment.own_key:
        return None
    return breaker.key_of(deployment.model.provider, deployment.model.upstream_model)


def cooling_down(deployment: Deployment) -> errors.ProviderUnavailable:
    left = breaker.cooldowns().get(breaker_key(deployment), settings.BREAKER_COOLDOWN_SECONDS)
    return errors.ProviderUnavailable(
        f"'{deployment.model.public_id}' failed repeatedly and is cooling down; retry in {max(1, round(left))}s "
        "or configure a fallback.", provider=deployment.model.provider, retry_after=max(1.0, left))



# --- the one attempt loop -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Upstream:
    """What the attempt loop calls: its targets (one per credential) in turn, the circuit breaker
    that judges its attempts (None: none), how a refusal of a tenant's own key reads, and the words
    before the provider's slug in a timeout."""

    next_target: Callable[[], Target]
    breaker_key: str | None = None
    refused: Callable[[errors.ProviderError], errors.ProviderError] = lambda error: error
    named: str = ""


def upstream_of(deployment: Deployment) -> Upstream:
    return Upstream(deployment.next_target, breaker_key(deployment), lambda error: own_key_refused(error, deployment))


@dataclass(frozen=True, slots=True)
class Output(Generic[T]):
    """How one attempt produces its output on a target: its items, an answer given whole being a
    stream of exactly one. A stream's items come under the provider's first-byte and between-chunk
    limits and are checked one by one (answers.checked_event); a whole answer only under the total."""

    open: Callable[[Target], AsyncIterator[T]]
    streamed: bool = False


def whole(answer: Callable[[Target], Awaitable[T]]) -> Output[T]:
    """An answer given whole, checked as it is read (answers.read_answer)."""
    async def one(target: Target) -> AsyncIterator[T]:
        yield await read_answer(answer(target), target)
    return Output(one)


def answer_of(operation: Operation[T], deployment: Deployment) -> Output[T]:
    return whole(lambda target: operation(deployment.adapter, target))


def events_of(request: ChatRequest, deployment: Deployment) -> Output[StreamEvent]:
    return Output(lambda target: deployment.adapter.stream(request, target), streamed=True)


END: Any = object()  # after an attempt's last item


async def next_item(items: AsyncIterator[T], target: Target, output: Output[T], limit: SilenceLimit, *,
                    first: bool, deadline: float, named: str = "") -> T:
    """The attempt's next item, or END after its last. A provider silent past the call's deadline,
    or in a stream past the first-byte limit (before its first event) or the between-chunks limit
    (after it), is timed out (``limit``, the attempt's: one timer for all its reads)."""
    phase = (target.first_byte_timeout if first else target.read_timeout) if output.streamed else math.inf
    now = time.monotonic()
    left = max(0.0, deadline - now)
    limit.start(now + min(phase, left))
    try:
        item = await anext(items)
    except StopAsyncIteration:
        return END
    except asyncio.CancelledError as exc:
        if not limit.expired():
            raise
        if left < phase:
            message = f"{named}{target.provider} took longer than {target.total_timeout:g}s."
        else:
            message = (f"{named}{target.provider} was silent for over {phase:g}s "
                       f"{'to start its answer' if first else 'between two chunks'}.")
        raise errors.ProviderTimeout(message, provider=target.provider) from exc
    except UNREADABLE as exc:
        raise unreadable(exc, target, produced=not first) from exc
    finally:
        limit.stop()
    return checked_event(item, target, produced=not first) if output.streamed else item


def retry_delay(attempt: int, error: errors.ProviderError, deadline: float) -> float | None:
    """The wait before the next attempt: the provider's Retry-After, or exponential backoff with
    full jitter. None when there is no next attempt: the error is final, the retries are spent, or
    the wait would reach the deadline."""
    if not error.retryable or attempt >= settings.UPSTREAM_MAX_RETRIES:
        return None
    delay = error.retry_after
    if delay is None:
        delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))
    return delay if time.monotonic() + delay < deadline else None


async def attempts(upstream: Upstream, output: Output[T], trace: Trace) -> AsyncIterator[T]:
    """One call on one upstream: its targets in turn, each attempt judged by its breaker, retried
    with backoff while the error is retryable, its breaker allows and nothing was produced (once an
    item is out, a failure is final), within the total timeout of the first attempt's target. A
    tenant's own key refused ends it as upstream.refused says."""
    started = time.monotonic()
    for attempt in itertools.count():
        target = upstream.next_target()
        trace.attempt(target)
        deadline = started + target.total_timeout
        produced = False
        verdict = breaker.Verdict(upstream.breaker_key, target)
        items = output.open(target)
        limit = SilenceLimit()
        try:
            while (item := await next_item(items, target, output, limit, first=not produced, deadline=deadline,
                                           named=upstream.named)) is not END:
                trace.answered = trace.answered if produced else time.monotonic()
                produced = True
                yield item
            await verdict.succeeded()
            return
        except errors.ProviderError as error:
            await verdict.failed(error)
            delay = None if produced else retry_delay(attempt, error, deadline)
            if delay is None or not await breaker.allows(upstream.breaker_key):
                raise upstream.refused(error) from error
            provider_metrics.record_retry(error.provider)
            await asyncio.sleep(delay)
        finally:
            limit.close()
            await verdict.close()
            await items.aclose()


async def only(items: AsyncIterator[T]) -> T:
    """The one item of an answer given whole, once its attempt has ended (and its verdict is given)."""
    [item] = [item async for item in items]
    return item


# --- the one chain walker -----------------------------------------------------------------------

async def walk(chain: Chain, output_of: Callable[[Deployment], Output[T]], trace: Trace) -> AsyncIterator[T]:
    """Output along the chain: each deployment its breaker allows, with its attempts; the next one
    when the chain moves on from the failure, never once an item was produced."""
    skipped: errors.ProviderError | None = None
    for index, deployment in enumerate(chain.deployments):
        if not await breaker.allows(breaker_key(deployment)):
            skipped = skipped or cooling_down(deployment)
            provider_metrics.record_fallback(deployment.model.provider, "breaker_open")
            continue
        trace.model = deployment.model
        produced = False
        items = attempts(upstream_of(deployment), output_of(deployment), trace)
        try:
            async for item in items:
                produced = True
                yield item
            return
        except errors.ProviderError as error:
            if produced or not chain.moves_on(error, index):
                raise
            provider_metrics.record_fallback(deployment.model.provider, fallback_reason(error) or "other")
        finally:
            await items.aclose()
    raise skipped or AssertionError("a chain with no deployment")


async def call_chain(chain: Chain, operation: Operation[T], trace: Trace) -> T:
    """One non-streamed call (a chat completion, an image, a video submission, speech, ...) along the chain."""
    return await only(walk(chain, lambda deployment: answer_of(operation, deployment), trace))


async def complete_chain(request: ChatRequest, chain: Chain, trace: Trace) -> ChatResult:
    return await call_chain(chain, lambda adapter, target: adapter.complete(request, target), trace)


def stream_chain(request: ChatRequest, chain: Chain, trace: Trace) -> AsyncIterator[StreamEvent]:
    return walk(chain, lambda deployment: events_of(request, deployment), trace)


async def call_upstream(upstream: Upstream, answer: Callable[[Target], Awaitable[T]], trace: Trace | None = None) -> T:
    """One answer given whole from any upstream (a deployment, a search engine), retried as a model call is."""
    return await only(attempts(upstream, whole(answer), trace or Trace()))


async def call(operation: Operation[T], deployment: Deployment, trace: Trace | None = None) -> T:
    """One non-streamed call on one deployment. An answer the adapter fails to read is the
    provider's malformed answer (answers.read_answer), never our 500."""
    return await only(attempts(upstream_of(deployment), answer_of(operation, deployment), trace or Trace()))


async def complete(request: ChatRequest, deployment: Deployment, trace: Trace | None = None) -> ChatResult:
    return await call(lambda adapter, target: adapter.complete(request, target), deployment, trace)


def stream(request: ChatRequest, deployment: Deployment, trace: Trace | None = None) -> AsyncIterator[StreamEvent]:
    """Events of one streamed call. Once an event has been yielded, a failure is final."""
    return attempts(upstream_of(deployment), events_of(request, deployment), trace or Trace())
