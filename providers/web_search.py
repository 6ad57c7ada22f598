"""Web search engines: Tavily, Serper and Exa behind one interface, and the operator's catalog of them.

    SearchClient.search(query, target)   one search, hits out, vendor errors as providers.errors
    get_search_engines()                 enabled search providers with their keys and per-search price,
                                         reloaded together with the model catalog (catalog_snapshot.get_catalog)

Search providers are Provider rows whose wire format is a key of providers.registry.SEARCH_CLIENTS; their keys are
Credentials (encrypted, rotating round robin) and their price per search is the provider quirk
``price_per_search`` (USD, a string). An enabled row without credentials serves only tenants who
bring their own key. Like the chat adapters, nothing here knows tenants, plans or Django requests.

Wire formats (each client's docstring says what is verified where):
    tavily   POST {base}/search   Authorization: Bearer <key>   {"query", "max_results", ...}
    serper   POST {base}/search   X-API-KEY: <key>              {"q", "num", "gl"}
    exa      POST {base}/search   x-api-key: <key>              {"query", "numResults", "contents"}
Errors map as the chat adapters' do: 429 -> ProviderRateLimited, 5xx and transport failures ->
ProviderUnavailable (ProviderTimeout), a refused key -> ProviderAuthFailed, other 4xx ->
ProviderBadRequest, each message naming the search provider and its own words.
"""

import dataclasses
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from providers import errors
from providers.adapters.http_calls import fetch_json, parse_retry_after, timeout_for
from providers.blocking import run_blocking
from providers.types import Target

MAX_QUERY_CHARS = 400  # Tavily refuses longer queries; the others gain nothing from them
SNIPPET_CHARS = 1200  # per hit: enough to ground an answer, bounded for the reservation


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str
    max_results: int = 5
    country: str | None = None  # ISO 3166-1 alpha-2, where the engine takes one


@dataclass(frozen=True, slots=True)
class SearchHit:
    title: str
    url: str
    snippet: str


def clip(text: str | None, limit: int = SNIPPET_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def vendor_error(status: int, headers: httpx.Headers, message: str, target: Target, *,
                 auth_statuses: tuple[int, ...] = (401, 403)) -> errors.ProviderError:
    """A search vendor's error response in the gateway's error tree."""
    said = f"web search provider {target.provider} answered HTTP {status}: {message.rstrip('.') or 'no details'}"
    if status == 429:
        return errors.ProviderRateLimited(f"The {said}.", provider=target.provider,
                                          retry_after=parse_retry_after(headers), upstream_status=status)
    if status in auth_statuses:
        return errors.ProviderAuthFailed(f"The {said}: its key was refused.", provider=target.provider,
                                         upstream_status=status)
    if status >= 500 or status in (408, 409):
        return errors.ProviderUnavailable(f"The {said}.", provider=target.provider, upstream_status=status)
    return errors.ProviderBadRequest(f"The {said}.", provider=target.provider, upstream_status=status)


def json_body(content: bytes) -> dict[str, Any]:
    try:
        body = json.loads(content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class SearchClient:
    """One search engine's HTTP API. ``search`` sends one query with the target's key and returns
    its hits, best first. It must NOT retry (the caller does), and must raise every vendor
    failure as a providers.errors.ProviderError that names the provider."""

    wire_format = ""

    async def search(self, query: SearchQuery, target: Target) -> list[SearchHit]:
        raise NotImplementedError

    @staticmethod
    def post(target: Target, headers: dict[str, str], body: dict[str, Any]) -> httpx.Request:
        return httpx.Request("POST", target.base_url.rstrip("/") + "/search",
                             headers={"content-type": "application/json", **headers},
                             content=json.dumps(body).encode(),
                             extensions={"timeout": timeout_for(target).as_dict()})


class TavilyClient(SearchClient):
    """Tavily (tavily-python ``TavilyClient._search``, docs.tavily.com/api-reference/endpoint/search):
    ``POST /search`` with ``Authorization: Bearer``; the answer's ``results`` carry title, url,
    content and score. Errors are ``{"detail": {"error": "..."}}``: 401 a bad key, 429 the usage
    limit, 432/433 the plan's limits (the SDK's ForbiddenError, with 403), 400 a bad request."""

    wire_format = "tavily"

    async def search(self, query: SearchQuery, target: Target) -> list[SearchHit]:
        body = {"query": query.text, "max_results": query.max_results, "search_depth": "basic",
                "include_answer": False, "include_raw_content": False, "include_images": False}
        payload = await fetch_json(self.post(target, {"Authorization": f"Bearer {target.api_key}"}, body),
                                   target, self.error)
        return [SearchHit(title=hit.get("title") or hit["url"], url=hit["url"], snippet=clip(hit.get("content")))
                for hit in payload.get("results", []) if hit.get("url")]

    @staticmethod
    def error(status: int, headers: httpx.Headers, content: bytes, target: Target) -> errors.ProviderError:
        detail = json_body(content).get("detail")
        message = detail.get("error", "") if isinstance(detail, dict) else str(detail or "")
        return vendor_error(status, headers, message, target, auth_statuses=(401, 403, 432, 433))


class SerperClient(SearchClient):
    """Serper (google.serper.dev; its documented curl/python snippets): ``POST /search`` with
    ``X-API-KEY`` and ``{"q", "num", "gl"}``; the answer's ``organic`` hits carry title, link,
    snippet and position. Errors are ``{"message": "...", "statusCode": N}``; a refused key is a 403
    ``Unauthorized.``, as Serper users report it."""

    wire_format = "serper"

    async def search(self, query: SearchQuery, target: Target) -> list[SearchHit]:
        body: dict[str, Any] = {"q": query.text, "num": query.max_results}
        if query.country:
            body["gl"] = query.country.lower()
        payload = await fetch_json(self.post(target, {"X-API-KEY": target.api_key}, body), target, self.error)
        return [SearchHit(title=hit.get("title") or hit["link"], url=hit["link"], snippet=clip(hit.get("snippet")))
                for hit in payload.get("organic", [])[:query.max_results] if hit.get("link")]

    @staticmethod
    def error(status: int, headers: httpx.Headers, content: bytes, target: Target) -> errors.ProviderError:
        return vendor_error(status, headers, str(json_body(content).get("message") or ""), target)


class ExaClient(SearchClient):
    """Exa (exa-py ``Exa.search``: camelCase keys, ``x-api-key``): ``POST /search`` with
    ``{"query", "numResults", "type": "auto", "contents": {"text": {"maxCharacters"}}}``; the answer's
    ``results`` carry id, url, title, text, and ``costDollars``. Errors are ``{"requestId", "error",
    "tag"}`` (exa.ai/docs error codes): 401 a bad key, 402 credits exhausted, 403 not allowed, 429."""

    wire_format = "exa"

    async def search(self, query: SearchQuery, target: Target) -> list[SearchHit]:
        body: dict[str, Any] = {"query": query.text, "numResults": query.max_results, "type": "auto",
                                "contents": {"text": {"maxCharacters": SNIPPET_CHARS}}}
        if query.country:
            body["userLocation"] = query.country.upper()
        payload = await fetch_json(self.post(target, {"x-api-key": target.api_key}, body), target, self.error)
        return [SearchHit(title=hit.get("title") or hit["url"], url=hit["url"],
                          snippet=clip(hit.get("text") or " ".join(hit.get("highlights") or [])))
                for hit in payload.get("results", []) if hit.get("url")]

    @staticmethod
    def error(status: int, headers: httpx.Headers, content: bytes, target: Target) -> errors.ProviderError:
        body = json_body(content)
        message = " ".join(str(part) for part in (body.get("error"), body.get("tag")) if part)
        return vendor_error(status, headers, message, target, auth_statuses=(401, 402, 403))


# --- the catalog of engines ------------------------------------------------------------------

@dataclass(slots=True)
class SearchEngine:
    """An enabled search provider: its client, the operator's keys (none: tenants' keys only) and
    the price of one search made with them."""

    provider: str
    client: SearchClient
    blank: Target  # the provider's address and timeouts, with no key
    targets: list[Target]  # the operator's keys
    price: Decimal
    _rotation: Iterator[Target] | None = field(default=None, init=False, repr=False)

    def next_target(self) -> Target | None:
        """The next operator key, round robin; None when the operator has none."""
        if not self.targets:
            return None
        if self._rotation is None:
            self._rotation = itertools.cycle(self.targets)
        return next(self._rotation)

    def target_with(self, api_key: str) -> Target:
        """This engine called with a tenant's own key."""
        return dataclasses.replace(self.blank, api_key=api_key)


def price_of(quirks: dict[str, Any], slug: str) -> Decimal:
    raw = (quirks or {}).get("price_per_search", "0")
    try:
        return Decimal(str(raw))
    except InvalidOperation as exc:
        raise ValueError(f"search provider {slug}: quirks.price_per_search must be a decimal string, "
                         f"not {raw!r}") from exc


def load_search_engines() -> dict[str, SearchEngine]:
    """Enabled search providers with a base URL, by slug (sync; the loader thread calls it)."""
    from providers.models import Provider
    from providers.registry import SEARCH_CLIENTS, get_search_client

    engines = {}
    for provider in Provider.objects.filter(enabled=True, wire_format__in=list(SEARCH_CLIENTS)).exclude(base_url=""):
        blank = Target(provider=provider.slug, upstream_model="", base_url=provider.base_url, api_key="",
                       connect_timeout=provider.connect_timeout, first_byte_timeout=provider.first_byte_timeout,
                       read_timeout=provider.read_timeout, total_timeout=provider.total_timeout,
                       quirks=provider.quirks or {})
        keys = [credential.get_secret() for credential in provider.credentials.filter(enabled=True).order_by("pk")]
        engines[provider.slug] = SearchEngine(
            provider=provider.slug, client=get_search_client(provider.wire_format), blank=blank,
            targets=[dataclasses.replace(blank, api_key=key) for key in keys],
            price=price_of(provider.quirks, provider.slug))
    return engines


_engines: tuple[object, dict[str, SearchEngine]] | None = None


async def get_search_engines() -> dict[str, SearchEngine]:
    """The engines, reloaded whenever the model catalog is (its cache lifetime, forget_catalog)."""
    global _engines
    from providers import catalog_snapshot

    catalog = await catalog_snapshot.get_catalog()
    if _engines is None or _engines[0] is not catalog:
        _engines = (catalog, await run_blocking(load_search_engines))
    return _engines[1]
