"""OpenAI's Moderations API (omni-moderation-*, text-moderation-*). OpenAICompatibleAdapter.moderate
delegates here, for a provider declaring quirk ``moderations: true`` (OpenAI; no other host serves
this shape: Mistral's /v1/moderations names its categories otherwise).

    POST {base_url}/moderations
        {"model", "input": [str] | [{"type": "text", "text"} | {"type": "image_url", "image_url": {"url"}}]}
        -> {"id", "model", "results": [{"flagged", "categories": {name: bool},
            "category_scores": {name: float}, "category_applied_input_types": {name: ["text"|"image"]}}]}

Several texts get a verdict each; the parts of one multimodal input (text and images, only the
omni models take images) get one verdict. Category names are kept exactly as OpenAI sends them
("self-harm/intent"), and new ones pass through. text-moderation models send no
``category_applied_input_types``: the verdict then has none. An answer with another number of
verdicts than inputs is malformed.

OpenAI reports no usage (moderation is free): the input is counted locally (TOKENS_PER_IMAGE an
image), flagged estimated, and billed at the catalog row's input price, 0 unless the operator sets
one. Errors are the calling adapter's (the OpenAI envelope).
"""

import asyncio
from typing import TYPE_CHECKING, Any

from providers.adapters.answers import malformed
from providers.adapters.http_calls import fetch_json
from providers.embedding_types import ModerationRequest, ModerationResult, ModerationVerdict
from providers.tokenizer import estimate_moderation_tokens
from providers.types import ImagePart, Target, Usage

if TYPE_CHECKING:
    from providers.adapters.openai.compatible import OpenAICompatibleAdapter


async def moderate(request: ModerationRequest, target: Target, api: "OpenAICompatibleAdapter") -> ModerationResult:
    prepared = api.post_json(target, "moderations", {"model": target.upstream_model, "input": encode_inputs(request)})
    payload = await fetch_json(prepared, target, api.error_from_response)
    results = payload.get("results")
    if not isinstance(results, list) or len(results) != request.expected_verdicts():
        count = len(results) if isinstance(results, list) else "no"
        raise malformed(f"{count} moderation results for {request.expected_verdicts()} inputs", target)
    verdicts = [read_verdict(result, target) for result in results]
    tokens = await asyncio.to_thread(estimate_moderation_tokens, request)
    return ModerationResult(results=verdicts, usage=Usage(input_tokens=tokens), usage_estimated=True,
                            upstream_model=str(payload.get("model") or target.upstream_model),
                            id=str(payload.get("id") or ""))


def encode_inputs(request: ModerationRequest) -> list[Any]:
    if not request.is_multimodal():
        return list(request.inputs)
    return [{"type": "image_url", "image_url": {"url": part.url}} if isinstance(part, ImagePart)
            else {"type": "text", "text": part if isinstance(part, str) else part.text}
            for part in request.inputs]


def read_verdict(result: Any, target: Target) -> ModerationVerdict:
    if not isinstance(result, dict) or type(result.get("flagged")) is not bool:
        raise malformed("a moderation result without its flagged verdict", target)
    categories = result.get("categories") or {}
    scores = result.get("category_scores") or {}
    applied = result.get("category_applied_input_types") or {}
    if not (isinstance(categories, dict) and all(type(value) is bool for value in categories.values())
            and isinstance(scores, dict) and all(type(value) in (int, float) for value in scores.values())
            and isinstance(applied, dict) and all(isinstance(value, list) for value in applied.values())):
        raise malformed("moderation categories not of OpenAI's shape", target)
    return ModerationVerdict(flagged=result["flagged"], categories=dict(categories),
                             category_scores={name: float(value) for name, value in scores.items()},
                             category_applied_input_types={name: [str(kind) for kind in kinds]
                                                           for name, kinds in applied.items()})
