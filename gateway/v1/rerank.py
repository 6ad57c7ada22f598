"""POST /v1/rerank (also /v1/rerank/ and /v2/rerank's path under /v1) in the Cohere/Jina shape
rerank clients send:

    {"model", "query", "documents": ["text", ...] | [{"text": ...} | {...}, ...],
     "top_n"?: int, "return_documents"?: bool, "rank_fields"?: [field, ...]}
    -> {"id", "model", "results": [{"index", "relevance_score", "document"?: {"text"} | {...}}],
        "usage": {"total_tokens"?, "search_units"?}, "meta": {"billed_units": {...}}}

Results come most relevant first; ``document`` is the request's own (a string as ``{"text"}``).
``rank_fields`` ranks object documents on those fields only; ``max_chunks_per_doc`` (Cohere v1's)
is refused rather than ignored.
"""

from typing import Any

from django.http import JsonResponse

from gateway.serving.retrieval import serve_rerank
from gateway.v1.admission import authenticated_call, read_json
from gateway.v1.errors import api_view, bad_request
from gateway.v1.json_body import decoder, expect, positive_int
from gateway.v1.openai_chat import model_of, refuse_unknown
from providers.embedding_types import RerankRequest, RerankResult

FIELDS = {"model", "query", "documents", "top_n", "return_documents", "max_chunks_per_doc", "rank_fields"}
MAX_RANK_FIELDS = 32
MAX_DOCUMENTS = 1000  # Cohere's own limit per request


@api_view
async def rerank(request):
    call = await authenticated_call(request, method="POST")
    rerank_request = decode(read_json(request))
    outcome = await serve_rerank(call, rerank_request)
    return JsonResponse(encode(outcome.result, request_id=call.request_id, model=rerank_request.model))


@decoder
def decode(payload: dict[str, Any]) -> RerankRequest:
    refuse_unknown(payload, FIELDS)
    model = model_of(payload)
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        raise bad_request("'query' is required: the text to rank the documents against.", param="query",
                          code="missing_required_parameter" if query is None else "invalid_value")
    documents = payload.get("documents")
    if documents is None:
        raise bad_request("'documents' is required: the texts (or objects) to rank.", param="documents",
                          code="missing_required_parameter")
    expect(documents, list, "documents", "an array")
    if not documents or len(documents) > MAX_DOCUMENTS:
        raise bad_request(f"'documents' must hold 1 to {MAX_DOCUMENTS} documents, not {len(documents)}.",
                          param="documents")
    for index, document in enumerate(documents):
        if not isinstance(document, str | dict) or not document:
            raise bad_request(f"'documents[{index}]' must be a non-empty string or object.", param="documents")
    return_documents = payload.get("return_documents", False)
    expect(return_documents, bool, "return_documents", "a boolean")
    if payload.get("max_chunks_per_doc") is not None:
        raise bad_request("'max_chunks_per_doc' is not supported: each provider chunks long documents its own way. "
                          "Leave it out, or split the documents yourself.", param="max_chunks_per_doc",
                          code="unsupported_argument")
    return RerankRequest(model=model, query=query, documents=documents, top_n=positive_int(payload, "top_n"),
                         return_documents=return_documents, rank_fields=decode_rank_fields(payload, documents))


def decode_rank_fields(payload: dict[str, Any], documents: list) -> tuple[str, ...]:
    """The fields of object documents to rank on: each object must have one of them."""
    fields = payload.get("rank_fields")
    if fields is None:
        return ()
    expect(fields, list, "rank_fields", "an array of field names")
    if not fields or len(fields) > MAX_RANK_FIELDS or not all(isinstance(name, str) and name for name in fields):
        raise bad_request(f"'rank_fields' must name 1 to {MAX_RANK_FIELDS} fields, as strings.", param="rank_fields")
    for index, document in enumerate(documents):
        if isinstance(document, dict) and not any(name in document for name in fields):
            raise bad_request(f"'documents[{index}]' has none of the rank_fields {fields[:5]}.", param="documents")
    return tuple(fields)


def encode(result: RerankResult, *, request_id: str, model: str) -> dict[str, Any]:
    results = []
    for hit in result.results:
        entry: dict[str, Any] = {"index": hit.index, "relevance_score": hit.relevance_score}
        if hit.document is not None:
            entry["document"] = {"text": hit.document} if isinstance(hit.document, str) else hit.document
        results.append(entry)
    usage = result.usage
    billed = {"search_units": usage.search_units} if usage.search_units else {"input_tokens": usage.input_tokens}
    return {"id": result.id or request_id, "object": "list", "model": model, "results": results,
            "usage": {"total_tokens": usage.input_tokens, "search_units": usage.search_units},
            "meta": {"billed_units": billed}}
