"""Public model id -> deployments, and the calls through them.

    get_catalog()     an in-process snapshot of enabled providers, models, prices and decrypted
                      credentials, reloaded every CATALOG_CACHE_SECONDS (no query per request)
    call(...)         one non-streamed call (chat, image, video submission, speech, ...), retried on
                      retryable errors; call_chain(...) goes on down a fallback chain
    complete(...)     call() for a chat completion
    stream(...)       events of one streamed call, retried and falling back only until the first event

Retries wait with exponential backoff and full jitter, or the provider's Retry-After when it
sent one, and never past the call's deadline. Credentials of a provider rotate round robin.
"""

import asyncio
import dataclasses
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from django.conf import settings

from providers import breaker, errors, tracing
from providers import metrics as provider_metrics
from providers.adapters.answers import read_answer, read_event
from providers.adapters.base import Adapter
from providers.blocking import run_blocking
from providers.pricing import MediaPrices, PriceTable, TokenPrices
from providers.registry import get_adapter
from providers.types import ChatRequest, ChatResult, StreamEvent, Target

T = TypeVar("T")
# What a call asks of a deployment: given its adapter and one of its targets, the result.
Operation = Callable[[Adapter, Target], Awaitable[T]]

BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0


@dataclass(frozen=True, slots=True)
class ModelInfo:
    public_id: str
    provider: str
    upstream_model: str
    capability: str
    group: str
    context_window: int
    max_output_tokens: int
    prices: TokenPrices
    created: int
    features: frozenset[str] = frozenset()  # chat features (model_features); none for a media model
    fallbacks: tuple[str, ...] = ()
    fallback_on: frozenset[str] = frozenset({"rate_limited", "unavailable"})
    # What a media model accepts (sizes, max_n, durations, ...): providers.models.Model.media_options.
    # Not part of the snapshot's identity (a dict is not hashable).
    media_options: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(slots=True)
class Deployment:
    """One way to serve a model: a provider's adapter and its rotating credentials."""

    model: ModelInfo
    adapter: Adapter
    targets: list[Target]
    own_key: bool = False  # called with a tenant's own key: outside the shared circuit breakers
    _rotation: Iterator[Target] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rotation = itertools.cycle(self.targets)

    def next_target(self) -> Target:
        return next(self._rotation)


class WeightedGroup:
    """Deployments of one priority sharing traffic by weight, by smooth weighted round robin
    (deterministic: weights 3:1 give A A B A, A A B A, ...)."""

    def __init__(self, deployments: list[Deployment], weights: list[int]):
        self.deployments = deployments
        self.weights = weights
        self.current = [0] * len(deployments)
        self.total = sum(weights)

    def order(self) -> list[Deployment]:
        """This call's order: the weighted pick first, then the rest as fallbacks by weight."""
        if len(self.deployments) == 1:
            return self.deployments
        for index, weight in enumerate(self.weights):
            self.current[index] += weight
        chosen = max(range(len(self.deployments)), key=self.current.__getitem__)
        self.current[chosen] -= self.total
        rest = sorted((i for i in range(len(self.deployments)) if i != chosen), key=lambda i: -self.weights[i])
        return [self.deployments[chosen]] + [self.deployments[i] for i in rest]


@dataclass(slots=True)
class Catalog:
    models: dict[str, ModelInfo]
    deployments: dict[str, list[WeightedGroup]]  # by priority, lowest first
    loaded_at: float

    def deployments_for(self, public_id: str) -> list[Deployment]:
        """Every deployment of a model, in the order this call should try them."""
        return [deployment for group in self.deployments[public_id] for deployment in group.order()]


def price_table(prices: dict) -> PriceTable:
    return tuple((str(detail), Decimal(str(price))) for detail, price in (prices or {}).items())


def media_prices_of(row) -> MediaPrices:
    return MediaPrices(
        per_image=row.price_per_image, image=price_table(row.image_prices),
        per_video_second=row.price_per_video_second, video_second=price_table(row.video_second_prices),
        per_million_characters=row.price_per_million_characters, per_audio_minute=row.price_per_audio_minute,
    )


def load_catalog() -> Catalog:
    """Build the snapshot from the database (sync; the admin and commands call it directly)."""
    from providers.models import Deployment as DeploymentRow
    from providers.models import Model

    credentials_by_provider: dict[int, list[str]] = {}

    def targets_of(provider, upstream_name: str) -> list[Target] | None:
        if provider.pk not in credentials_by_provider:
            credentials_by_provider[provider.pk] = [
                credential.get_secret() for credential in provider.credentials.filter(enabled=True).order_by("pk")
            ]
        keys = credentials_by_provider[provider.pk]
        needs_key = provider.wire_format != "demo" and (provider.quirks or {}).get("auth") != "none"
        if (needs_key and not keys) or (provider.wire_format != "demo" and not provider.base_url):
            return None  # nothing to call it with: not servable
        return [
            Target(provider=provider.slug, upstream_model=upstream_name, base_url=provider.base_url, api_key=key,
                   connect_timeout=provider.connect_timeout, first_byte_timeout=provider.first_byte_timeout,
                   read_timeout=provider.read_timeout, total_timeout=provider.total_timeout,
                   quirks=provider.quirks or {})
            for key in (keys or [""])
        ]

    extra: dict[int, list] = {}
    for row in DeploymentRow.objects.filter(enabled=True, provider__enabled=True).select_related("provider"):
        extra.setdefault(row.model_id, []).append(row)

    models: dict[str, ModelInfo] = {}
    deployments: dict[str, list[WeightedGroup]] = {}
    for row in Model.objects.filter(enabled=True).select_related("provider"):
        info = ModelInfo(
            public_id=row.public_id,
            provider=row.provider.slug,
            upstream_model=row.upstream_name,
            capability=row.capability,
            group=row.group,
            context_window=row.context_window,
            max_output_tokens=row.max_output_tokens,
            prices=TokenPrices(row.input_price, row.output_price, row.cached_input_price, row.cache_write_price,
                               media_prices_of(row)),
            media_options=row.media_options or {},
            created=int(row.created_at.timestamp()),
            features=model_features(row.capability, row.features),
            fallbacks=tuple(row.fallbacks or ()),
            fallback_on=frozenset(row.fallback_on or ()),
        )
        candidates = [(row.provider, row.upstream_name, 0, 1)] if row.provider.enabled else []
        candidates += [(d.provider, d.upstream_name, d.priority, d.weight) for d in extra.get(row.pk, ())]
        by_priority: dict[int, tuple[list[Deployment], list[int]]] = {}
        for provider, upstream_name, priority, weight in candidates:
            targets = targets_of(provider, upstream_name)
            if targets is None or weight == 0:
                continue
            served = dataclasses.replace(info, provider=provider.slug, upstream_model=upstream_name)
            group = by_priority.setdefault(priority, ([], []))
            group[0].append(Deployment(served, get_adapter(provider.wire_format), targets))
            group[1].append(weight)
        if not by_priority:
            continue  # no deployment can serve it: not listed
        if info.provider != by_priority[min(by_priority)][0][0].model.provider:
            info = by_priority[min(by_priority)][0][0].model  # listed under the provider that serves first
        models[info.public_id] = info
        deployments[info.public_id] = [WeightedGroup(*by_priority[p]) for p in sorted(by_priority)]
    return Catalog(models=models, deployments=deployments, loaded_at=time.monotonic())


_catalog: Catalog | None = None
_reload_lock: asyncio.Lock | None = None


async def get_catalog() -> Catalog:
    global _catalog, _reload_lock
    catalog = _catalog
    if catalog is not None and time.monotonic() - catalog.loaded_at < settings.CATALOG_CACHE_SECONDS:
        return catalog
    if _reload_lock is None:
        _reload_lock = asyncio.Lock()
    try:
        async with _reload_lock:  # one reload at a time, the rest wait for it
            if _catalog is None or _catalog is catalog:
                _catalog = await run_blocking(load_catalog)
    except RuntimeError:
        # The lock belongs to an event loop that is gone (tests run several); start afresh.
        _reload_lock = None
        _catalog = await run_blocking(load_catalog)
    return _catalog


def forget_catalog() -> None:
    """Make the next request reload the catalog (after an admin edit or bootstrap)."""
    global _catalog
    _catalog = None


# What features_of can find a request needing (image_output is a model's, never a request's).
REQUEST_FEATURES = frozenset({"tools", "json_schema", "reasoning", "vision"})


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


def model_features(capability: str, declared: list[str] | None) -> frozenset[str]:
    """A model's chat features, the one reading of the catalog (requests are checked against it,
    /v1/models and the dashboard list it): a chat model's declared ones, or, when it declares
    none, every one a request can need (so nothing is refused); a media model has none, whatever
    its row says (bootstrap once gave every model of a provider the provider's chat features)."""
    if capability != "chat":
        return frozenset()
    return frozenset(declared) if declared else REQUEST_FEATURES


def check_features(request: ChatRequest, model: ModelInfo) -> None:
    """Refuse, before any call, a request using a feature the model is declared to lack."""
    missing = sorted(features_of(request) - model.features)
    if missing:
        raise errors.UnsupportedFeature(
            f"'{model.public_id}' (provider {model.provider}) does not support {', '.join(missing)}. "
            f"Remove it from the request or pick a model that has it (GET /v1/models lists each model's features).",
            provider=model.provider,
        )


def backoff_delay(attempt: int, error: errors.ProviderError) -> float:
    if error.retry_after is not None:
        return error.retry_after
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


async def wait_before_retry(attempt: int, error: errors.ProviderError, deadline: float) -> None:
    """Sleep before the next attempt, or re-raise when the wait would pass the deadline."""
    delay = backoff_delay(attempt, error)
    if attempt >= settings.UPSTREAM_MAX_RETRIES or time.monotonic() + delay >= deadline:
        raise error
    provider_metrics.record_retry(error.provider)
    await asyncio.sleep(delay)


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


async def call_chain(chain: Chain, operation: Operation[T], trace: Trace) -> T:
    """One non-streamed call (a chat completion, an image, a video submission, speech, ...) along
    the chain: each deployment with its retries, then the next one when the chain moves on."""
    skipped: errors.ProviderError | None = None
    for index, deployment in enumerate(chain.deployments):
        if not await breaker.allows(breaker_key(deployment)):
            skipped = skipped or cooling_down(deployment)
            provider_metrics.record_fallback(deployment.model.provider, "breaker_open")
            continue
        trace.model = deployment.model
        try:
            return await call(operation, deployment, trace)
        except errors.ProviderError as error:
            if not chain.moves_on(error, index):
                raise
            provider_metrics.record_fallback(deployment.model.provider, fallback_reason(error) or "other")
    raise skipped or AssertionError("a chain with no deployment")


async def complete_chain(request: ChatRequest, chain: Chain, trace: Trace) -> ChatResult:
    return await call_chain(chain, lambda adapter, target: adapter.complete(request, target), trace)


async def stream_chain(request: ChatRequest, chain: Chain, trace: Trace) -> AsyncIterator[StreamEvent]:
    skipped: errors.ProviderError | None = None
    for index, deployment in enumerate(chain.deployments):
        if not await breaker.allows(breaker_key(deployment)):
            skipped = skipped or cooling_down(deployment)
            provider_metrics.record_fallback(deployment.model.provider, "breaker_open")
            continue
        trace.model = deployment.model
        produced = False
        events = stream(request, deployment, trace)
        try:
            async for event in events:
                produced = True
                yield event
            return
        except errors.ProviderError as error:
            if produced or not chain.moves_on(error, index):
                raise
            provider_metrics.record_fallback(deployment.model.provider, fallback_reason(error) or "other")
        finally:
            await events.aclose()
    raise skipped or AssertionError("a chain with no deployment")


async def next_event(events: AsyncIterator[StreamEvent], target: Target, *, first: bool,
                     deadline: float) -> StreamEvent | None:
    """The stream's next event (checked: answers.read_event), or None at its end; a provider
    silent past the first-byte limit (before the first event) or the between-chunks limit
    (after it), or past the call's deadline, is timed out."""
    phase = target.first_byte_timeout if first else target.read_timeout
    left = max(0.0, deadline - time.monotonic())
    try:
        async with asyncio.timeout(min(phase, left)):
            return await read_event(events, target, produced=not first)
    except StopAsyncIteration:
        return None
    except TimeoutError as exc:
        if left < phase:
            message = f"{target.provider} took longer than {target.total_timeout:g}s."
        else:
            message = (f"{target.provider} was silent for over {phase:g}s "
                       f"{'to start its answer' if first else 'between two chunks'}.")
        raise errors.ProviderTimeout(message, provider=target.provider) from exc


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
        if breaker.counts(error):
            await breaker.record_failure(self.key)
        else:
            await breaker.record_success(self.key)  # it answered, if only to refuse the request

    async def succeeded(self) -> None:
        self.kind = "ok"
        self.given = True
        await breaker.record_success(self.key)

    async def close(self) -> None:
        provider_metrics.record_attempt(self.target, self.kind)
        if self.kind != "ok":
            tracing.failed(self.span, self.kind)
        self.span.set_attribute("result", self.kind)
        self.span.end()
        if not self.given:
            await breaker.release_probe(self.key)


async def call(operation: Operation[T], deployment: Deployment, trace: Trace | None = None) -> T:
    """One non-streamed call on one deployment: its credentials in turn, retried with backoff
    while the error is retryable, within the provider's total timeout. An answer the adapter
    fails to read is the provider's malformed answer (answers.read_answer), never our 500."""
    trace = trace or Trace()
    key = breaker_key(deployment)
    started = time.monotonic()
    for attempt in itertools.count():
        target = deployment.next_target()
        trace.attempt(target)
        deadline = started + target.total_timeout
        verdict = Verdict(key, target)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                result = await read_answer(operation(deployment.adapter, target), target)
        except TimeoutError as exc:
            error = errors.ProviderTimeout(f"{target.provider} took longer than {target.total_timeout:g}s.",
                                           provider=target.provider)
            await verdict.failed(error)
            raise error from exc
        except errors.ProviderError as error:
            await verdict.failed(error)
            if not error.retryable or not await breaker.allows(key):
                raise own_key_refused(error, deployment) from error
            await wait_before_retry(attempt, error, deadline)
        else:
            trace.answered = time.monotonic()
            await verdict.succeeded()
            return result
        finally:
            await verdict.close()
    raise AssertionError("unreachable")


async def complete(request: ChatRequest, deployment: Deployment, trace: Trace | None = None) -> ChatResult:
    return await call(lambda adapter, target: adapter.complete(request, target), deployment, trace)


async def stream(request: ChatRequest, deployment: Deployment, trace: Trace | None = None) -> AsyncIterator[StreamEvent]:
    """Events of one streamed call. Once an event has been yielded, a failure is final."""
    trace = trace or Trace()
    key = breaker_key(deployment)
    started = time.monotonic()
    for attempt in itertools.count():
        target = deployment.next_target()
        trace.attempt(target)
        deadline = started + target.total_timeout
        produced = False
        verdict = Verdict(key, target)
        events = deployment.adapter.stream(request, target)
        try:
            while True:
                event = await next_event(events, target, first=not produced, deadline=deadline)
                if event is None:
                    break
                trace.answered = trace.answered if produced else time.monotonic()
                produced = True
                yield event
            await verdict.succeeded()
            return
        except errors.ProviderError as error:
            await verdict.failed(error)
            if produced or not error.retryable or not await breaker.allows(key):
                raise own_key_refused(error, deployment) from error
            await wait_before_retry(attempt, error, deadline)
        finally:
            await verdict.close()
            await events.aclose()
