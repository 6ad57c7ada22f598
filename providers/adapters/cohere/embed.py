"""Cohere's Embed and Rerank APIs (v2). CohereAdapter.embed and .rerank delegate here.

    POST {base_url}/v2/embed   Authorization: Bearer <key>
        {"model", "texts": [str], "input_type", "embedding_types": ["float"], "output_dimension"?}
        -> {"id", "response_type": "embeddings_by_type", "embeddings": {"float": [[float]]}, "texts",
            "meta": {"api_version", "billed_units": {"input_tokens"}}}
    POST {base_url}/v2/rerank
        {"model", "query", "documents": [str], "top_n"?}
        -> {"id", "results": [{"index", "relevance_score"}], "meta": {"billed_units": {"search_units"}}}
(docs.cohere.com/reference/embed and /reference/rerank, v2.)

Embed:
- At most MAX_TEXTS (96) texts a call: larger requests are split and put back in order
  (embedding_batches). Text only: token arrays are refused before any call.
- ``input_type`` is required from the v3 models on: query -> search_query, document ->
  search_document, classification, clustering as named; similarity and no hint -> search_document
  (Cohere has no symmetric type; documents on both sides is its advice for similarity).
- Floats are always asked for (``embedding_types: ["float"]``): the client's base64, if asked, is
  made from them by the encoder (float32, as Cohere's own base64 type is).
- ``output_dimension`` (embed-v4.0: 256, 512, 1024, 1536) as the catalog row allows.
- Usage: ``meta.billed_units.input_tokens``, what Cohere charges; none -> counted locally.
Rerank:
- Documents go as strings (objects as YAML, which Cohere recommends for structured data); the
  documents a client asks back are its own, by index. Cohere reranks up to 10,000 documents.
- Billed in search units (``meta.billed_units.search_units``: a query with up to 100 documents is
  one); an answer without them is billed ceil(documents / 100), flagged estimated.
Errors are the chat adapter's (``map_error``: cohere.error_from_response).
"""

import json
import math
from collections.abc import Sequence
from typing import Any

import httpx

from providers import errors
from providers.adapters.answers import UnreadableUsage, malformed, token_count
from providers.adapters.embedding_batches import BatchAnswer, EmbeddingInput, embed_in_batches
from providers.adapters.http_calls import ErrorMapper, fetch_json, timeout_for
from providers.adapters.rerank import read_hits
from providers.embedding_types import (
    DOCUMENTS_PER_SEARCH_UNIT,
    EmbeddingRequest,
    EmbeddingResult,
    RerankRequest,
    RerankResult,
)
from providers.types import Target, Usage

MAX_TEXTS = 96
INPUT_TYPES = {"query": "search_query", "document": "search_document", "classification": "classification",
               "clustering": "clustering", "similarity": "search_document"}
DEFAULT_INPUT_TYPE = "search_document"


def post(target: Target, route: str, body: dict[str, Any]) -> httpx.Request:
    return httpx.Request(
        "POST", httpx.URL(f"{target.base_url.rstrip('/')}/v2/{route}"),
        headers={"Authorization": f"Bearer {target.api_key}", "Content-Type": "application/json",
                 "Accept": "application/json"},
        content=json.dumps(body).encode(), extensions={"timeout": timeout_for(target).as_dict()})


async def embed(request: EmbeddingRequest, target: Target, map_error: ErrorMapper) -> EmbeddingResult:
    if request.has_token_arrays():
        raise errors.UnsupportedFeature(f"Cohere ({target.provider}) embeds text only, not token arrays: "
                                        "send the text.", provider=target.provider)

    async def call(batch: Sequence[EmbeddingInput]) -> BatchAnswer:
        body: dict[str, Any] = {"model": target.upstream_model, "texts": list(batch),
                                "input_type": INPUT_TYPES.get(request.input_type or "", DEFAULT_INPUT_TYPE),
                                "embedding_types": ["float"]}
        if request.dimensions is not None:
            body["output_dimension"] = request.dimensions
        payload = await fetch_json(post(target, "embed", body), target, map_error)
        return parse_embed(payload, target)

    return await embed_in_batches(request, target, call, max_inputs=MAX_TEXTS)


def parse_embed(payload: dict[str, Any], target: Target) -> BatchAnswer:
    embeddings = payload.get("embeddings")
    # embeddings_by_type: {"float": [...]}; the older embeddings_floats answer is the list itself.
    vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
    if not isinstance(vectors, list) or not all(
            isinstance(vector, list) and vector and all(type(value) in (int, float) for value in vector)
            for vector in vectors):
        raise malformed("an embed answer without float embeddings", target)
    return BatchAnswer(vectors=[[float(value) for value in vector] for vector in vectors],
                       input_tokens=billed(payload, "input_tokens"))


def billed(payload: dict[str, Any], unit: str) -> int | None:
    """A count of ``meta.billed_units``, or None when absent or not a count."""
    meta = payload.get("meta")
    units = meta.get("billed_units") if isinstance(meta, dict) else None
    value = units.get(unit) if isinstance(units, dict) else None
    try:
        return None if value is None else token_count(value)
    except UnreadableUsage:
        return None


async def rerank(request: RerankRequest, target: Target, map_error: ErrorMapper) -> RerankResult:
    body: dict[str, Any] = {"model": target.upstream_model, "query": request.query,
                            "documents": request.texts()}
    if request.top_n is not None:
        body["top_n"] = request.top_n
    payload = await fetch_json(post(target, "rerank", body), target, map_error)
    hits = read_hits(payload.get("results"), request, target)
    units = billed(payload, "search_units")
    estimated = units is None
    if estimated:
        units = max(1, math.ceil(len(request.documents) / DOCUMENTS_PER_SEARCH_UNIT))
    return RerankResult(results=hits, usage=Usage(search_units=units), usage_estimated=estimated,
                        upstream_model=target.upstream_model, id=str(payload.get("id") or ""))
