"""Web search grounding, for every chat protocol: the canonical request in, a grounded request and
citations out.

    plan_search(call, chat)             which engine and key will search, at what price (before
                                        admission, which reserves the price); None without search
    ground(chat, plan)                  build the query from the conversation, search, and put the
                                        numbered sources before the conversation as a system message
    Grounding.cite(result) / cite_stream(events)
                                        the answer's [n] markers as url_citation annotations

Decisions:
- Plan gating: web search is a capability of its own: the plan's allowed_capabilities must list
  "search" (403 capability_not_on_plan otherwise), whoever pays for the search.
- Engine: the tenant's own key for a search provider (x-tavily-api-key, x-serper-api-key,
  x-exa-api-key, or stored under Tenant provider keys by the provider's slug) picks that provider
  and is not billed the search price; otherwise the cheapest enabled search provider that has an
  operator key, billed its ``price_per_search``. Neither: a 400 web_search_not_configured.
- One search per request, of the latest user message's text (its last MAX_QUERY_CHARS characters:
  the question usually ends a long message); ``search_context_size`` low / medium / high reads
  3 / 5 / 8 results.
- A failed search fails the request with the search provider's error (502 upstream_unavailable,
  429, 504, or 400 provider_key_refused for a tenant's refused key), naming the provider: never a
  silent ungrounded answer. Retryable failures are retried like model calls, rotating our keys.
- Citations: the model is asked to cite sources as [n]; each marker in the answer becomes a
  url_citation whose start_index / end_index (characters, end exclusive) span the marker. In a
  stream, the annotation rides on the delta that completes the marker.
"""

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

from billing.entitlements import Refusal, upgrade_hint
from gateway.serving.call import Call
from gateway.serving.errors import GatewayError
from providers import errors, router
from providers.types import (
    ChatRequest,
    ChatResult,
    Delta,
    Message,
    StreamEvent,
    Target,
    UrlCitation,
    WebSearchCall,
)
from providers.web_search import (
    MAX_QUERY_CHARS,
    SNIPPET_CHARS,
    SearchEngine,
    SearchHit,
    SearchQuery,
    get_search_engines,
)

SEARCH_CAPABILITY = "search"
RESULTS = {"low": 3, "medium": 5, "high": 8}
KEY_HEADER = "x-{}-api-key"  # by wire format: x-tavily-api-key, x-serper-api-key, x-exa-api-key
HEADER_WIRE_FORMATS = ("tavily", "serper", "exa")
# A hit in the context message: its number, title and URL (bounded here) and its snippet.
HIT_OVERHEAD_BYTES = 700
MARKER = re.compile(r"\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")


@dataclass(slots=True)
class SearchPlan:
    query: SearchQuery
    engine: SearchEngine
    target: Target | None  # None: the operator's keys, rotated per attempt
    price: Decimal  # what the tenant pays per search
    key_source: str = ""  # where the tenant's own key came from, for error messages

    @property
    def provider(self) -> str:
        return self.engine.provider


async def is_search_available(call: Call) -> bool:
    """Whether a search could run for this call: on its plan, with a key (its own or ours)."""
    caller = call.caller
    if not caller.plan.allows_capability(SEARCH_CAPABILITY):
        return False
    engines = (await get_search_engines()).values()
    return any(engine.targets or caller.provider_keys.get(engine.provider) for engine in engines) or any(
        call.search_keys.values())


def search_not_configured(detail: str) -> GatewayError:
    return GatewayError(400, f"Web search is not available: {detail}", param="tools", code="web_search_not_configured")


async def plan_search(call: Call, chat: ChatRequest) -> SearchPlan | None:
    """The engine, key and price of this request's search, or None when it asked for none. The
    client's own search keys come with the call (``search_keys``, by wire format; over HTTP the
    headers x-tavily-api-key, x-serper-api-key and x-exa-api-key)."""
    caller = call.caller
    if chat.web_search is None:
        return None
    if chat.web_search.optional and not await is_search_available(call):
        return None  # an agent's offered tool: served without search, as a tool it cannot run
    if not caller.plan.allows_capability(SEARCH_CAPABILITY):
        raise Refusal(403, f"web search is not on plan {caller.plan.name}; {upgrade_hint(caller)}.",
                      type="permission_error", code="capability_not_on_plan")
    query = search_query(chat)
    engines = sorted((await get_search_engines()).values(), key=lambda engine: (engine.price, engine.provider))
    for wire_format in HEADER_WIRE_FORMATS:
        header = KEY_HEADER.format(wire_format)
        key = call.search_keys.get(wire_format, "").strip()
        if not key:
            continue
        engine = next((e for e in engines if e.client.wire_format == wire_format), None)
        if engine is None:
            raise search_not_configured(f"{header} was sent, but no {wire_format} search provider is enabled on "
                                        "this gateway. Send the key of an enabled one, or ask the operator.")
        return SearchPlan(query, engine, engine.target_with(key), Decimal(0), key_source=header)
    for engine in engines:
        key = caller.provider_keys.get(engine.provider)
        if key:
            return SearchPlan(query, engine, engine.target_with(key), Decimal(0), key_source="your stored key")
    for engine in engines:
        if engine.targets:
            return SearchPlan(query, engine, None, engine.price)
    raise search_not_configured(
        "this gateway has no search provider with a key. Send your own in "
        f"{', '.join(KEY_HEADER.format(w) for w in HEADER_WIRE_FORMATS)}, or ask the operator to set "
        "TAVILY_API_KEY, SERPER_API_KEY or EXA_API_KEY.")


def result_count(chat: ChatRequest) -> int:
    return RESULTS[chat.web_search.context_size] if chat.web_search else 0


def most_context_bytes(chat: ChatRequest) -> int:
    """The most the sources message can add to the prompt, in UTF-8 bytes (for the reservation)."""
    if chat.web_search is None:
        return 0
    return HIT_OVERHEAD_BYTES + MAX_QUERY_CHARS * 4 + result_count(chat) * (SNIPPET_CHARS * 4 + HIT_OVERHEAD_BYTES)


def search_query(chat: ChatRequest) -> SearchQuery:
    """The latest user message's text, whitespace collapsed, its tail if too long."""
    text = next((" ".join(m.text().split()) for m in reversed(chat.messages) if m.role == "user" and m.text().strip()),
                "")
    if not text:
        raise GatewayError(400, "Web search needs a user message with text to search for.", param="messages",
                           code="invalid_value")
    if len(text) > MAX_QUERY_CHARS:
        tail = text[-MAX_QUERY_CHARS:]
        text = tail.split(" ", 1)[1] if " " in tail else tail
    return SearchQuery(text=text, max_results=result_count(chat), country=chat.web_search.country)


async def run_search(plan: SearchPlan, query: SearchQuery) -> list[SearchHit]:
    """One search through the router's attempt loop, retried on retryable failures like a model
    call (backoff, Retry-After, our keys rotating), within the provider's total timeout. Outside
    the models' circuit breakers: a search engine's failures say nothing about a model."""
    def refused(error: errors.ProviderError) -> errors.ProviderError:
        if plan.key_source and isinstance(error, errors.ProviderAuthFailed):
            return errors.OwnKeyRefused(
                f"The web search provider {plan.provider} refused your own key ({plan.key_source}, HTTP "
                f"{error.upstream_status}). Check the key.", provider=plan.provider,
                upstream_status=error.upstream_status)
        return error

    engine = router.Upstream(lambda: plan.target or plan.engine.next_target(), breaker_key=None, refused=refused,
                             named="The web search provider ")
    return await router.call_upstream(engine, lambda target: plan.engine.client.search(query, target))


async def ground(chat: ChatRequest, plan: SearchPlan) -> "Grounding":
    """Search, and add the results to the conversation as a system message with numbered sources,
    after the client's own system messages. Raises the search provider's error, prefixed so the
    client knows no answer was generated."""
    query = plan.query
    try:
        hits = await run_search(plan, query)
    except errors.ProviderError as error:
        raise type(error)(f"Web search failed, so no answer was generated. {error.message}",
                          provider=error.provider, retry_after=error.retry_after,
                          upstream_status=error.upstream_status) from error
    hits = hits[:query.max_results]
    chat.web_search_calls.append(WebSearchCall(query=query.text, urls=tuple(hit.url for hit in hits)))
    first_turn = next((i for i, m in enumerate(chat.messages) if m.role not in ("system", "developer")), 0)
    chat.messages.insert(first_turn, Message(role="system", content=sources_message(query.text, hits)))
    return Grounding(query=query.text, sources=hits, provider=plan.provider)


def sources_message(query: str, hits: list[SearchHit]) -> str:
    if not hits:
        return (f'A web search for "{query}" found nothing. If the answer depends on current information, '
                "say that the search found no sources.")
    numbered = "\n\n".join(f"[{n}] {hit.title[:200]}\nURL: {hit.url[:400]}\n{hit.snippet}"
                           for n, hit in enumerate(hits, start=1))
    return (f'Web search results for "{query}", retrieved {time.strftime("%Y-%m-%d", time.gmtime())}. Use them to '
            "answer the user's latest message. Cite each source you use with its number in square brackets, "
            f"like [1], right after the statement it supports.\n\n{numbered}")


@dataclass(slots=True)
class CitationScanner:
    """Finds [n] markers in text arriving piece by piece; each only once, when complete."""

    sources: list[SearchHit]
    text: str = ""
    scanned: int = 0  # the text before this holds no marker still to come

    def feed(self, piece: str) -> list[UrlCitation]:
        self.text += piece
        found = []
        for match in MARKER.finditer(self.text, self.scanned):
            for number in match.group(1).split(","):
                index = int(number) - 1
                if 0 <= index < len(self.sources):
                    hit = self.sources[index]
                    found.append(UrlCitation(url=hit.url, title=hit.title, start_index=match.start(),
                                             end_index=match.end()))
            self.scanned = match.end()
        # An opening bracket near the end may be a marker still arriving: scan it again next time.
        pending = self.text.rfind("[", self.scanned)
        if pending == -1 or len(self.text) - pending > 16:
            self.scanned = len(self.text)
        else:
            self.scanned = pending
        return found


@dataclass(slots=True)
class Grounding:
    query: str
    sources: list[SearchHit]
    provider: str
    scanner: CitationScanner = field(init=False)

    def __post_init__(self) -> None:
        self.scanner = CitationScanner(self.sources)

    def cite(self, result: ChatResult) -> None:
        result.annotations = CitationScanner(self.sources).feed(result.content or "")

    async def cite_stream(self, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        try:
            async for event in events:
                if isinstance(event, Delta) and event.content:
                    event.annotations = self.scanner.feed(event.content) or None
                yield event
        finally:
            await events.aclose()
