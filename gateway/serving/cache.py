"""The answer cache, a step of the serving pipeline: after the plan gate (the model is on the
plan, the request's features allowed), before admission.

    look_up_chat(call, chat, model) / look_up_embeddings(call, request, model) -> Lookup
        decide (caching.policy: plan, tenant, key, the request's headers, determinism), then the
        exact key (caching.digests), then, for a chat with the semantic cache on, the nearest
        last user message (caching.semantic) embedded by the operator's model
    a hit:  answer_chat(...) / answer_embeddings(...) -> Outcome
        admitted as any request (the rate limit, the spend cap) at the plan's cache price, never
        calling a provider; its meter settles a usage record ending ``cache_hit`` (a whole answer
        leaves before that record commits: Meter.settles_behind); a chat answers whole or as
        ChatEvents replayed from the kept answer, which the client's protocol encodes as it
        encodes a live stream
    a miss: keep(lookup, outcome) -> outcome
        the whole answer kept once settled; a stream folded as its events pass and kept before
        its last event (Settled), so a client that has seen the end can be answered from it

Every kept answer belongs to one tenant (caching.store). The semantic cache embeds through the
gateway's own router (retries, breakers) but with no admission and no usage record: the
operator's embeddings, counted on /metrics (tollgate_cache_embedding_*), never billed to a tenant.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from billing import admission
from caching import digests, metrics, semantic, stats, store
from caching.answers import CHAT, EMBEDDING, CachedAnswer, StreamedAnswer
from caching.policy import CacheStatus, Decision, bypass, decide
from gateway.serving.call import Call, Outcome
from gateway.serving.chains import find_model
from gateway.serving.meter import Meter
from gateway.serving.streams import ChatStream, Closing, Settled, relay
from providers import router
from providers.embedding_types import EmbeddingRequest
from providers.pricing import cost_of
from providers.router import ModelInfo
from providers.types import (
    ChatRequest,
    ChatResult,
    Delta,
    Finish,
    StreamEvent,
    ToolCallDelta,
    UsageReport,
)
from usage.models import Ending

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Lookup:
    kind: str  # CHAT | EMBEDDING
    tenant_id: int
    decision: Decision
    digest: str = ""
    scope: str = ""  # semantic: the digest of everything but the last user message
    vector: list[float] | None = None  # semantic: that message's embedding
    hit: CachedAnswer | None = None


def is_deterministic(chat: ChatRequest) -> bool:
    return chat.temperature == 0 or chat.seed is not None


def live_reason(chat: ChatRequest) -> str:
    """Why a chat's answer must not be kept whatever the settings: it reads the live web (or
    runs code the gateway's tools run anew each time)."""
    if chat.web_search is not None:
        return "web-search"
    return "gateway-tools" if chat.gateway_tools else ""


def decision_for(call: Call, *, deterministic: bool) -> Decision:
    plan = call.caller.plan
    return decide(call.cache_policy, call.cache_directives, on_plan=plan.cache_enabled,
                  semantic_on_plan=plan.semantic_cache_enabled, deterministic=deterministic,
                  max_ttl_seconds=settings.CACHE_MAX_TTL_SECONDS)


async def look_up_chat(call: Call, chat: ChatRequest, model: ModelInfo) -> Lookup:
    reason = live_reason(chat)
    decision = bypass(reason) if reason else decision_for(call, deterministic=is_deterministic(chat))
    lookup = Lookup(CHAT, call.caller.tenant_id, decision)
    if decision.read or decision.write:
        canonical = digests.canonical_chat(chat)
        lookup.digest = digests.digest_of(lookup.tenant_id, CHAT, model.public_id, canonical)
        if decision.read:
            lookup.hit = await find_fresh(lookup, lookup.digest)
            if lookup.hit is None and decision.semantic:
                await look_up_semantic(lookup, chat, model, canonical)
    return finish_lookup(call, lookup)


async def look_up_embeddings(call: Call, request: EmbeddingRequest, model: ModelInfo) -> Lookup:
    lookup = Lookup(EMBEDDING, call.caller.tenant_id, decision_for(call, deterministic=True))
    if lookup.decision.read or lookup.decision.write:
        canonical = digests.canonical_embeddings(request)
        lookup.digest = digests.digest_of(lookup.tenant_id, EMBEDDING, model.public_id, canonical)
        if lookup.decision.read:
            lookup.hit = await find_fresh(lookup, lookup.digest)
    return finish_lookup(call, lookup)


async def find_fresh(lookup: Lookup, digest: str) -> CachedAnswer | None:
    """The tenant's answer under ``digest``, if no older than the request's TTL (a store that
    fails is a miss: the cache never fails a request)."""
    try:
        found = await store.find(lookup.tenant_id, digest)
    except Exception:
        log.exception("answer cache: looking up an answer of tenant %s failed", lookup.tenant_id)
        return None
    if found is None or store.clock() - found.stored_at > lookup.decision.ttl_seconds:
        return None
    return found


async def look_up_semantic(lookup: Lookup, chat: ChatRequest, model: ModelInfo, canonical: dict) -> None:
    parts = digests.semantic_parts(chat, canonical)
    if parts is None:
        return
    scope, text = parts
    lookup.scope = digests.digest_of(lookup.tenant_id, "chat-scope", model.public_id, scope)
    lookup.vector = await embed_for_cache(text)
    if lookup.vector is None:
        return
    near = semantic.nearest(lookup.tenant_id, lookup.scope, lookup.vector, settings.CACHE_SEMANTIC_THRESHOLD,
                            now=store.clock())
    if near is not None:
        lookup.hit = await find_fresh(lookup, near[0])
        if lookup.hit is not None:
            lookup.hit.match = "semantic"


def finish_lookup(call: Call, lookup: Lookup) -> Lookup:
    """What the cache did, on the outcome (its headers), on /metrics and in the tenant's counts. A
    hit is told there once admitted at the cache price (hit_meter): a refused one was no hit."""
    decision = lookup.decision
    if lookup.hit is not None:
        return lookup
    if decision.read:
        call.outcome.cache = CacheStatus("miss")
        metrics.record_lookup(lookup.kind, "miss")
        stats.count_lookup(lookup.tenant_id, hit=False)
    else:
        call.outcome.cache = CacheStatus("bypass", reason=decision.bypass)
        metrics.record_lookup(lookup.kind, "bypass", decision.bypass)
    return lookup


async def embed_for_cache(text: str) -> list[float] | None:
    """The operator's embedding of ``text`` (CACHE_SEMANTIC_MODEL), or None if it failed: the
    request then goes on as an exact miss."""
    try:
        model, deployments = await find_model(settings.CACHE_SEMANTIC_MODEL, capability="embedding")
        able = [d for d in deployments if d.adapter.can_embed(d.targets[0])]
        request = EmbeddingRequest(model=model.public_id, inputs=[text])
        # Bounded: a slow embedding provider must not hold up every cacheable request.
        result = await asyncio.wait_for(
            router.call_chain(router.Chain(able, model.fallback_on),
                              lambda adapter, target: adapter.embed(request, target), router.Trace()),
            settings.CACHE_SEMANTIC_TIMEOUT_SECONDS)
    except Exception as error:  # the provider's, a timeout, or the model is not in the catalog: never the request's
        log.warning("semantic cache: embedding with %s failed (%r); looking up exact matches only",
                    settings.CACHE_SEMANTIC_MODEL, error)
        return None
    metrics.record_embedding(model.public_id, result.usage.input_tokens, cost_of(model.prices, result.usage))
    return result.vectors[0] if result.vectors else None


# --- hits ------------------------------------------------------------------------------------------

async def hit_meter(call: Call, lookup: Lookup, model: ModelInfo, *, streamed: bool) -> Meter:
    """Admission at the cache price, and the meter of a request the cache answers."""
    found = lookup.hit
    served = (await router.get_catalog()).models.get(found.served_model, model)
    admitted = await admission.admit_cache_hit(call.caller, served, request_id=call.request_id,
                                               end_user=call.end_user)
    call.outcome.cache = CacheStatus("hit", match=found.match, age_seconds=max(0, int(store.clock() - found.stored_at)))
    metrics.record_lookup(lookup.kind, "hit", found.match)
    usage = found.result.usage
    meter = Meter(call.admitted(admitted), started=call.started, streamed=streamed, input_estimate=usage.input_tokens)
    trace = meter.trace
    trace.model, trace.provider, trace.upstream_model = served, found.provider, found.result.upstream_model
    meter.served_by(served, upstream_model=found.result.upstream_model)
    meter.settlement.ending = Ending.CACHE_HIT
    meter.settles_behind = not streamed  # a whole answer leaves at once; a stream's end still waits for it
    call.outcome.meter, call.outcome.trace = meter, trace
    saved = max(found.cost - admitted.reservation.amount, Decimal(0))
    stats.count_lookup(lookup.tenant_id, hit=True, saved=saved)
    metrics.record_saved(saved)
    return meter


async def answer_chat(call: Call, chat: ChatRequest, model: ModelInfo, lookup: Lookup,
                      on_complete: Callable[[], Awaitable[None]] | None = None) -> Outcome:
    """Answer ``chat`` from the cache, as serve_chat would have: whole, or as its stream."""

    outcome, result = call.outcome, lookup.hit.result
    meter = await hit_meter(call, lookup, model, streamed=chat.stream)
    if chat.stream:
        scope = AsyncExitStack()
        await scope.enter_async_context(meter)
        events = replay(result)
        outcome.stream = ChatStream(relay(await anext(events), events, meter, scope, on_complete), scope)
        return outcome
    async with meter:
        meter.answered(result)
    outcome.result = result
    if on_complete is not None:
        await on_complete()
    return outcome


async def replay(result: ChatResult) -> AsyncIterator[StreamEvent]:
    """A kept answer as the events of a stream: reasoning, then the answer (text, tool calls,
    images, citations), its finish and its usage."""
    if result.reasoning or result.reasoning_signature:
        yield Delta(reasoning=result.reasoning, reasoning_signature=result.reasoning_signature)
    if result.content or result.images or result.citations:
        yield Delta(content=result.content, images=result.images or None, citations=result.citations or None,
                    annotations=result.annotations or None, logprobs=result.logprobs,
                    text_logprobs=result.text_logprobs)
    if result.tool_calls:
        yield Delta(tool_calls=[ToolCallDelta(index=index, id=call.id, name=call.name, arguments=call.arguments)
                                for index, call in enumerate(result.tool_calls)])
    yield Finish(result.finish_reason)
    yield UsageReport(result.usage)


async def answer_embeddings(call: Call, model: ModelInfo, lookup: Lookup) -> Outcome:
    result = lookup.hit.result
    meter = await hit_meter(call, lookup, model, streamed=False)
    async with meter:
        meter.settlement.usage, meter.settlement.upstream_model = result.usage, result.upstream_model
    call.outcome.result = result
    return call.outcome


# --- misses --------------------------------------------------------------------------------------

async def keep(lookup: Lookup, outcome: Outcome) -> Outcome:
    """Keep a miss's answer (a whole one now; a stream's as it ends), if the decision says so."""
    if not lookup.decision.write or lookup.hit is not None:
        return outcome
    if outcome.stream is not None:
        outcome.stream.events = kept_stream(lookup, outcome, outcome.stream.events)
    elif outcome.result is not None and outcome.cost is not None:
        await keep_answer(lookup, outcome, outcome.result, outcome.cost)
    return outcome


async def kept_stream(lookup: Lookup, outcome: Outcome, events: AsyncIterator) -> AsyncIterator:
    """The stream's events, passed on; the answer they make is kept before the last one."""

    folded, reason, usage = StreamedAnswer(), "", None
    try:
        async for event in events:
            if isinstance(event, Delta):
                folded.add(event)
            elif isinstance(event, Finish):
                reason = event.reason
            elif isinstance(event, Closing):
                usage = event.usage
            elif isinstance(event, Settled) and reason and usage is not None:
                result = folded.finish(reason, usage, outcome.meter.settlement.upstream_model)
                await keep_answer(lookup, outcome, result, event.cost)
            yield event
    finally:
        await events.aclose()


async def keep_answer(lookup: Lookup, outcome: Outcome, result, cost: Decimal) -> None:
    """Keep one answer for the decision's TTL (never failing the request that made it)."""
    now = store.clock()
    answer = CachedAnswer(kind=lookup.kind, result=result, served_model=outcome.served_model or "",
                          provider=outcome.trace.provider if outcome.trace else "", cost=cost, stored_at=now,
                          expires_at=now + lookup.decision.ttl_seconds)
    try:
        kept = await store.keep(lookup.tenant_id, lookup.digest, answer)
    except Exception:
        log.exception("answer cache: keeping an answer of tenant %s failed", lookup.tenant_id)
        return
    if kept and lookup.vector is not None and lookup.scope:
        semantic.remember(lookup.tenant_id, lookup.scope, lookup.vector, lookup.digest, answer.expires_at)
