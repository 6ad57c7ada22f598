"""Rerank: answers read into the IR (read_hits, every wire format), and the rerank APIs served by
hosts of the OpenAI-compatible family. OpenAICompatibleAdapter.rerank delegates here; Cohere's
own /v2/rerank is in cohere/embed.py.

    POST {base_url}/rerank
    jina    {"model", "query", "documents": [str], "top_n"?, "return_documents": false}
            -> {"model", "results": [{"index", "relevance_score"}], "usage": {"total_tokens", "prompt_tokens"?}}
            Jina's shape is Cohere's v1 rerank, also served by vLLM, SiliconFlow and others.
    voyage  {"model", "query", "documents": [str], "top_k"?, "return_documents": false}
            -> {"object": "list", "model", "data": [{"index", "relevance_score"}], "usage": {"total_tokens"}}
            (docs.voyageai.com/reference/reranker-api: at most 1,000 documents)

A provider declares its shape with quirk ``rerank``: "jina" | "voyage"; without it the provider has
no rerank (can_rerank is False). Documents go as strings (embedding_types.document_text: an
object's text, else YAML). The provider is never asked to send the documents back: a hit carries
the request's own document when the client asked for them. Both bill tokens (Voyage's "query
tokens x documents + document tokens"); an answer without a count is counted locally, flagged
estimated. Errors are the calling adapter's (OpenAI's envelope; a FastAPI ``{"detail"}`` body
keeps its message).
"""

import asyncio
from typing import TYPE_CHECKING, Any

from providers import errors
from providers.adapters.answers import malformed
from providers.adapters.http_calls import fetch_json
from providers.adapters.openai.embeddings import reported_tokens
from providers.embedding_types import RerankHit, RerankRequest, RerankResult
from providers.tokenizer import estimate_rerank_tokens
from providers.types import Target, Usage

if TYPE_CHECKING:
    from providers.adapters.openai.compatible import OpenAICompatibleAdapter

# Dialect -> (the field limiting the hits, the field listing them in the answer).
DIALECTS = {"jina": ("top_n", "results"), "voyage": ("top_k", "data")}


def has_rerank(target: Target) -> bool:
    return target.quirks.get("rerank") in DIALECTS


async def rerank(request: RerankRequest, target: Target, api: "OpenAICompatibleAdapter") -> RerankResult:
    if not has_rerank(target):
        raise errors.UnsupportedFeature(f"{target.provider} has no rerank API here.", provider=target.provider)
    limit_field, hits_field = DIALECTS[target.quirks["rerank"]]
    body: dict[str, Any] = {"model": target.upstream_model, "query": request.query,
                            "documents": request.texts(),
                            "return_documents": False}
    if request.top_n is not None:
        body[limit_field] = request.top_n
    payload = await fetch_json(api.post_json(target, "rerank", body), target, api.error_from_response)
    hits = read_hits(payload.get(hits_field), request, target)
    tokens = reported_tokens(payload.get("usage"))
    estimated = tokens is None
    if estimated:
        tokens = await asyncio.to_thread(estimate_rerank_tokens, request)
    return RerankResult(results=hits, usage=Usage(input_tokens=tokens), usage_estimated=estimated,
                        upstream_model=str(payload.get("model") or target.upstream_model),
                        id=str(payload.get("id") or ""))


def read_hits(items: Any, request: RerankRequest, target: Target) -> list[RerankHit]:
    """A rerank answer's hits, most relevant first, at most top_n; each an index into the request's
    documents (malformed otherwise) with the document itself when the client asked for it."""
    if not isinstance(items, list):
        raise malformed("a rerank answer without its list of results", target)
    hits = []
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score") if isinstance(item, dict) else None
        if type(index) is not int or not 0 <= index < len(request.documents) or type(score) not in (int, float):
            raise malformed("a rerank result without a document index in range and a relevance score", target)
        hits.append(RerankHit(index=index, relevance_score=float(score),
                              document=request.documents[index] if request.return_documents else None))
    hits.sort(key=lambda hit: -hit.relevance_score)
    return hits[:request.top_n] if request.top_n is not None else hits
