"""The catalog as calls read it: an in-process snapshot of the enabled providers, models, prices
and decrypted credentials (providers.catalog_seed seeds the rows it is read from).

    load_catalog()    the snapshot, built from the database (sync)
    get_catalog()     the current snapshot, reloaded every CATALOG_CACHE_SECONDS (no query per request;
                      in the background before it expires, so a busy gateway never waits for it)
    forget_catalog()  make the next request reload it
"""

import asyncio
import dataclasses
import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from providers.adapters.base import Adapter
from providers.blocking import run_blocking
from providers.pricing import MediaPrices, PriceTable, TokenPrices
from providers.registry import get_adapter
from providers.types import Target


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


# Every chat feature a request can need (router.features_of finds them; image_output is a
# model's, never a request's).
REQUEST_FEATURES = frozenset({"tools", "json_schema", "reasoning", "vision"})


def model_features(capability: str, declared: list[str] | None) -> frozenset[str]:
    """A model's chat features, the one reading of the catalog (requests are checked against it,
    /v1/models and the dashboard list it): a chat model's declared ones, or, when it declares
    none, every one a request can need (so nothing is refused); a media model has none, whatever
    its row says (bootstrap once gave every model of a provider the provider's chat features)."""
    if capability != "chat":
        return frozenset()
    return frozenset(declared) if declared else REQUEST_FEATURES


def price_table(prices: dict) -> PriceTable:
    return tuple((str(detail), Decimal(str(price))) for detail, price in (prices or {}).items())


def media_prices_of(row) -> MediaPrices:
    return MediaPrices(
        per_image=row.price_per_image, image=price_table(row.image_prices),
        per_video_second=row.price_per_video_second, video_second=price_table(row.video_second_prices),
        per_million_characters=row.price_per_million_characters, per_audio_minute=row.price_per_audio_minute,
        per_thousand_searches=row.price_per_thousand_searches,
    )


def model_info_of(row) -> ModelInfo:
    """A Model row as the snapshot holds it, listed under the row's own provider."""
    return ModelInfo(
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


def targets_of(provider, upstream_name: str, keys_by_provider: dict[int, list[str]]) -> list[Target] | None:
    """One target per enabled credential of the provider (read once per load into keys_by_provider),
    or None when there is nothing to call it with."""
    if provider.pk not in keys_by_provider:
        keys_by_provider[provider.pk] = [
            credential.get_secret() for credential in provider.credentials.filter(enabled=True).order_by("pk")
        ]
    keys = keys_by_provider[provider.pk]
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


def load_catalog() -> Catalog:
    """Build the snapshot from the database (sync; the admin and commands call it directly)."""
    from providers.models import Deployment as DeploymentRow
    from providers.models import Model

    keys_by_provider: dict[int, list[str]] = {}
    extra: dict[int, list] = {}
    for row in DeploymentRow.objects.filter(enabled=True, provider__enabled=True).select_related("provider"):
        extra.setdefault(row.model_id, []).append(row)

    models: dict[str, ModelInfo] = {}
    deployments: dict[str, list[WeightedGroup]] = {}
    for row in Model.objects.filter(enabled=True).select_related("provider"):
        info = model_info_of(row)
        candidates = [(row.provider, row.upstream_name, 0, 1)] if row.provider.enabled else []
        candidates += [(d.provider, d.upstream_name, d.priority, d.weight) for d in extra.get(row.pk, ())]
        by_priority: dict[int, tuple[list[Deployment], list[int]]] = {}
        for provider, upstream_name, priority, weight in candidates:
            targets = targets_of(provider, upstream_name, keys_by_provider)
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


log = logging.getLogger(__name__)

RELOAD_AHEAD = 0.25  # of CATALOG_CACHE_SECONDS: a snapshot this close to expiry is reloaded in the background

_catalog: Catalog | None = None
_forgotten = 0  # counts forget_catalog(): a reload begun before one is neither kept nor shared
_reload: tuple[asyncio.Task, int] | None = None  # the reload under way, and the count it began at


async def get_catalog() -> Catalog:
    catalog = _catalog
    if catalog is not None:
        age = time.monotonic() - catalog.loaded_at
        if age < settings.CATALOG_CACHE_SECONDS:
            if age > settings.CATALOG_CACHE_SECONDS * (1 - RELOAD_AHEAD):
                reloading()
            return catalog
    return await asyncio.shield(reloading())  # one request leaving must not cancel the others' reload


def reloading() -> asyncio.Task:
    """The reload under way on this event loop (tests run several), or a new one: one at a time."""
    global _reload
    if _reload is not None:
        task, began_at = _reload
        if not task.done() and began_at == _forgotten and task.get_loop() is asyncio.get_running_loop():
            return task
    task = asyncio.ensure_future(reload_catalog(_forgotten))
    task.add_done_callback(reload_done)
    _reload = (task, _forgotten)
    return task


async def reload_catalog(forgotten: int) -> Catalog:
    global _catalog
    catalog = await run_blocking(load_catalog)
    if forgotten == _forgotten:  # else an edit came meanwhile: the next request reads it
        _catalog = catalog
    return catalog


def reload_done(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        # Requests waiting for it get the error; a reload ahead of expiry is tried again later.
        log.warning("reloading the catalog failed: %s", task.exception())


def forget_catalog() -> None:
    """Make the next request reload the catalog (after an admin edit or bootstrap)."""
    global _catalog, _forgotten
    _forgotten += 1
    _catalog = None
