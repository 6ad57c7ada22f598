"""Gemini API embeddings (gemini-embedding-001, text-embedding-004). GeminiAdapter.embed delegates here.

    POST {base_url}/v1beta/models/{model}:batchEmbedContents   x-goog-api-key: <key>
        {"requests": [{"model": "models/{model}", "content": {"parts": [{"text"}]},
                       "taskType"?, "outputDimensionality"?}]}
        -> {"embeddings": [{"values": [float]}]}   in the requests' order
(ai.google.dev/api/embeddings: models.batchEmbedContents, EmbedContentRequest, TaskType.)

- Every request in the batch names the model as ``models/{model}`` (Gemini refuses a batch whose
  requests name another model than the path).
- At most MAX_REQUESTS (100) requests a call: Gemini answers 400 "at most 100 requests can be in one
  batch" beyond (undocumented; observed and fixed alike in vercel/ai, weaviate, lancedb). Larger
  requests are split and put back in order (embedding_batches).
- The input-type hint is ``taskType``: query -> RETRIEVAL_QUERY, document -> RETRIEVAL_DOCUMENT,
  similarity -> SEMANTIC_SIMILARITY, classification -> CLASSIFICATION, clustering -> CLUSTERING.
- ``dimensions`` is ``outputDimensionality`` (Gemini truncates the vector), as the catalog allows.
- Text only: token arrays are refused before any call.
- The answer has no token count (a ``usageMetadata.promptTokenCount``, should one come, is read):
  the inputs are counted locally, flagged estimated.
Errors are the Gemini API's: gemini_errors.error_from_response.
"""

from collections.abc import Sequence
from typing import Any

from providers import errors
from providers.adapters.answers import UnreadableUsage, malformed, token_count
from providers.adapters.embedding_batches import BatchAnswer, EmbeddingInput, embed_in_batches
from providers.adapters.gemini import errors as gemini_errors
from providers.adapters.gemini.request import post
from providers.adapters.http_calls import fetch_json
from providers.embedding_types import EmbeddingRequest, EmbeddingResult
from providers.types import Target

MAX_REQUESTS = 100
TASK_TYPES = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT", "similarity": "SEMANTIC_SIMILARITY",
              "classification": "CLASSIFICATION", "clustering": "CLUSTERING"}


async def embed(request: EmbeddingRequest, target: Target) -> EmbeddingResult:
    if request.has_token_arrays():
        raise errors.UnsupportedFeature(f"Gemini ({target.provider}) embeds text only, not token arrays: "
                                        "send the text.", provider=target.provider)

    async def call(batch: Sequence[EmbeddingInput]) -> BatchAnswer:
        body = {"requests": [embed_content_request(text, request, target) for text in batch]}
        payload = await fetch_json(post(target, "batchEmbedContents", body), target,
                                   gemini_errors.error_from_response)
        return parse_batch(payload, target)

    return await embed_in_batches(request, target, call, max_inputs=MAX_REQUESTS)


def embed_content_request(text: EmbeddingInput, request: EmbeddingRequest, target: Target) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": f"models/{target.upstream_model}", "content": {"parts": [{"text": text}]}}
    task = TASK_TYPES.get(request.input_type or "")
    if task:
        entry["taskType"] = task
    if request.dimensions is not None:
        entry["outputDimensionality"] = request.dimensions
    return entry


def parse_batch(payload: dict[str, Any], target: Target) -> BatchAnswer:
    embeddings = payload.get("embeddings")
    if not isinstance(embeddings, list):
        raise malformed("a batchEmbedContents answer without embeddings", target)
    vectors = []
    for embedding in embeddings:
        values = embedding.get("values") if isinstance(embedding, dict) else None
        if not isinstance(values, list) or not values or not all(type(v) in (int, float) for v in values):
            raise malformed("an embedding without its values", target)
        vectors.append([float(value) for value in values])
    return BatchAnswer(vectors=vectors, input_tokens=prompt_tokens(payload.get("usageMetadata")))


def prompt_tokens(metadata: Any) -> int | None:
    value = metadata.get("promptTokenCount") if isinstance(metadata, dict) else None
    try:
        return None if value is None else token_count(value)
    except UnreadableUsage:
        return None
