"""serve_embeddings, serve_rerank, serve_moderation: calls answered whole, on the same key, plan
and bill as chat.

    model (of the capability) -> plan -> the adapter can do it -> admission of the most the input
    can cost (a byte-level bound on its tokens; rerank's search units) -> async with meter:
    router (retries, other deployments) -> the provider's usage (or a local count, flagged
    estimated) recorded once

The reservation bounds are the requests' own ``most_usage()`` (providers.embedding_types: a
byte-level bound on tokens, Cohere's search units of chunked documents); a moderation input's
image counts TOKENS_PER_IMAGE.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from billing import entitlements
from billing.entitlements import TOKENS_PER_IMAGE
from gateway.serving import cache
from gateway.serving.call import Call, Outcome
from gateway.serving.chains import find_model
from gateway.serving.errors import bad_request
from gateway.serving.media import media_meter
from providers import router
from providers.embedding_types import (
    EmbeddingRequest,
    ModerationRequest,
    RerankRequest,
    check_embedding_options,
)
from providers.router import Deployment, ModelInfo
from providers.types import TextPart, Usage

CAN = {"embedding": "can_embed", "rerank": "can_rerank", "moderation": "can_moderate"}
VERB = {"embedding": "embed text", "rerank": "rerank documents", "moderation": "moderate content"}


async def serve_embeddings(call: Call, request: EmbeddingRequest) -> Outcome:
    call.attribute(request.user)
    model, deployments = await admitted_model(call, request.model, "embedding")
    check_embedding_options(request, model.media_options, model.public_id)
    cached = await cache.look_up_embeddings(call, request, model)  # the answer cache: a hit calls no provider
    if cached.hit is not None:
        return await cache.answer_embeddings(call, model, cached)
    outcome = await serve_whole(call, model, deployments, request.most_usage(),
                                lambda adapter, target: adapter.embed(request, target))
    return await cache.keep(cached, outcome)


async def serve_rerank(call: Call, request: RerankRequest) -> Outcome:
    model, deployments = await admitted_model(call, request.model, "rerank")
    return await serve_whole(call, model, deployments, request.most_usage(),
                             lambda adapter, target: adapter.rerank(request, target))


async def serve_moderation(call: Call, request: ModerationRequest) -> Outcome:
    model, deployments = await admitted_model(call, request.model, "moderation")
    tokens = sum(len(item.encode()) if isinstance(item, str) else
                 len(item.text.encode()) if isinstance(item, TextPart) else TOKENS_PER_IMAGE
                 for item in request.inputs)
    return await serve_whole(call, model, deployments, Usage(input_tokens=tokens),
                             lambda adapter, target: adapter.moderate(request, target))


async def admitted_model(call: Call, public_id: str, capability: str) -> tuple[ModelInfo, list[Deployment]]:
    """The model, on the caller's plan, and its deployments that can serve the capability."""
    model, deployments = await find_model(public_id, capability=capability)
    entitlements.check_model(call.caller, model)
    able = [d for d in deployments if getattr(d.adapter, CAN[capability])(d.targets[0])]
    if not able:
        raise bad_request(f"'{model.public_id}' (provider {model.provider}) does not {VERB[capability]} here.",
                          param="model", code="unsupported_operation")
    return model, able


async def serve_whole(call: Call, model: ModelInfo, deployments: list[Deployment], most: Usage,
                      attempt: Callable[[Any, Any], Awaitable[Any]]) -> Outcome:
    """Admit ``most``, call along the chain inside the meter's scope, record the result's usage."""
    meter = await media_meter(call, model, most=most)
    async with meter:
        result = await router.call_chain(router.Chain(deployments, model.fallback_on), attempt, meter.trace)
        meter.settlement.usage, meter.settlement.usage_estimated = result.usage, result.usage_estimated
        meter.settlement.upstream_model = result.upstream_model
    call.outcome.result = result
    return call.outcome
