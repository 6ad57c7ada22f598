"""Fake Jina AI and Voyage AI upstreams over real HTTP on 127.0.0.1: their embeddings and rerank APIs.

What they follow:
- Jina (api.jina.ai/openapi.json, the Reranker and Embeddings API pages; newapi's and 4allapi's
  copies of the rerank format): ``POST /v1/rerank`` ``{"model", "query", "documents": [str | object],
  "top_n"?, "return_documents"?}`` -> ``{"model", "usage": {"total_tokens", "prompt_tokens"},
  "results": [{"index", "relevance_score", "document"?: {"text"}}]}`` (``document`` unless
  return_documents is false); ``POST /v1/embeddings`` ``{"model", "input": [str], "task"?,
  "dimensions"?, "embedding_type"?, "normalized"?, "late_chunking"?}`` -> OpenAI's list shape with
  ``usage {"total_tokens", "prompt_tokens"}``. Errors ``{"detail": str}`` (FastAPI), 401 for a
  missing or wrong key, 422 for a body it cannot read. [U] Jina's per-call input limit is not
  documented where we read; this fake has none.
- Voyage (docs.voyageai.com/reference/reranker-api and /embeddings-api): ``POST /v1/rerank``
  ``{"query", "documents": [str], "model", "top_k"?, "return_documents"?, "truncation"?}`` ->
  ``{"object": "list", "data": [{"index", "relevance_score", "document"?}], "model",
  "usage": {"total_tokens"}}``, at most 1,000 documents; ``POST /v1/embeddings`` ``{"input": str |
  [str], "model", "input_type"?: "query" | "document", "truncation"?, "output_dimension"?,
  "output_dtype"?, "encoding_format"?: "base64"}`` -> ``{"object": "list", "data": [{"object":
  "embedding", "embedding", "index"}], "model", "usage": {"total_tokens"}}``, at most 1,000 inputs
  and (voyage-3.5) 320,000 tokens. Errors ``{"detail": str}``. Both refuse fields they do not have
  (OpenAI's ``user``, ``dimensions`` at Voyage) with a 400/422, so a field leaking through fails.
This fake's own choices: a token is a word; rerank tokens are Voyage's formula (query tokens x
documents + document tokens); relevance is the share of the query's words in the document (ties
keep the documents' order); vectors are openai_embeddings.fake_vector (1,024 values unless asked).

Tests script them with ``enqueue(HostReply(...))``; unscripted requests get the default answer.
"""

from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.openai_embeddings import encode_base64, fake_vector
from tests.fakes.server import ScriptedServer

JINA_KEY = "jina_fake_key"
VOYAGE_KEY = "pa-fake-voyage-key"
DEFAULT_SIZE = 1024
VOYAGE_MAX_DOCUMENTS = 1000
VOYAGE_EMBED_FIELDS = {"input", "model", "input_type", "truncation", "output_dimension", "output_dtype",
                       "encoding_format"}
VOYAGE_RERANK_FIELDS = {"query", "documents", "model", "top_k", "return_documents", "truncation"}
JINA_EMBED_FIELDS = {"model", "input", "task", "dimensions", "embedding_type", "normalized", "late_chunking"}
JINA_RERANK_FIELDS = {"model", "query", "documents", "top_n", "return_documents"}
JINA_TASKS = {"retrieval.query", "retrieval.passage", "text-matching", "classification", "separation"}


@dataclass
class HostReply:
    status: int = 200
    detail: str = "The fake upstream failed as scripted."
    headers: dict[str, str] = field(default_factory=dict)
    send_usage: bool = True
    raw_body: str | None = None  # 200 with exactly this text as the body


def words(text: str) -> set[str]:
    return {word.strip(".,?!").lower() for word in text.split()}


def relevance(query: str, document: str) -> float:
    asked = words(query)
    return round(len(asked & words(document)) / len(asked), 4) if asked else 0.0


def ranked(query: str, documents: list[str], top: int | None) -> list[tuple[int, float]]:
    """(index, score) most relevant first; ties in the documents' order."""
    scores = sorted(((index, relevance(query, text)) for index, text in enumerate(documents)),
                    key=lambda pair: -pair[1])
    return scores[:top] if top is not None else scores


def rerank_tokens(query: str, documents: list[str]) -> int:
    return len(query.split()) * len(documents) + sum(len(text.split()) for text in documents)


class RerankHost(ScriptedServer):
    """The two hosts' shared serving: key check, request log, script; each names its own shapes."""

    limit_field = ""
    hits_field = ""
    embed_fields: set[str] = set()
    rerank_fields: set[str] = set()
    reply_class = HostReply

    @property
    def base_url(self) -> str:
        return f"{self.address}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/rerank", self.rerank)
        app.router.add_post("/v1/embeddings", self.embeddings)
        return app

    @staticmethod
    def fail(status: int, detail: str, headers: dict | None = None) -> web.Response:
        return web.json_response({"detail": detail}, status=status, headers=headers)

    async def admit(self, request: web.Request, fields: set[str]) -> tuple[dict, HostReply, web.Response | None]:
        """The body, the scripted reply, and the refusal to answer instead (or None)."""
        body = await request.json()
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return body, HostReply(), self.fail(401, "Provided API key is invalid.")
        unknown = sorted(set(body) - fields)
        if unknown:
            return body, HostReply(), self.fail(400, f"Request body has an unexpected field: {unknown[0]}")
        reply = self.next_reply()
        if reply.status != 200:
            return body, reply, self.fail(reply.status, reply.detail, reply.headers)
        if reply.raw_body is not None:
            return body, reply, web.Response(text=reply.raw_body, content_type="application/json")
        return body, reply, None

    async def rerank(self, request: web.Request) -> web.Response:
        body, reply, refused = await self.admit(request, self.rerank_fields)
        if refused is not None:
            return refused
        documents = body.get("documents")
        if not isinstance(documents, list) or not all(isinstance(text, str) for text in documents):
            return self.fail(422, "documents must be a list of strings")
        problem = self.rerank_problem(body)
        if problem:
            return self.fail(400, problem)
        hits = []
        for index, score in ranked(body["query"], documents, body.get(self.limit_field)):
            hit: dict = {"index": index, "relevance_score": score}
            if body.get("return_documents", self.returns_documents_by_default):
                hit["document"] = self.document_shape(documents[index])
            hits.append(hit)
        answer: dict = {"model": body["model"], self.hits_field: hits}
        if reply.send_usage:
            answer["usage"] = self.usage(rerank_tokens(body["query"], documents))
        return web.json_response(answer)

    async def embeddings(self, request: web.Request) -> web.Response:
        body, reply, refused = await self.admit(request, self.embed_fields)
        if refused is not None:
            return refused
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) and text for text in inputs):
            return self.fail(422, "input must be a string or a list of non-empty strings")
        problem = self.embed_problem(body, inputs)
        if problem:
            return self.fail(400, problem)
        size = body.get(self.dimensions_field) or DEFAULT_SIZE
        as_base64 = self.wants_base64(body)
        data = [{"object": "embedding", "index": index,
                 "embedding": encode_base64(fake_vector(text, size)) if as_base64 else fake_vector(text, size)}
                for index, text in enumerate(inputs)]
        answer: dict = {"object": "list", "data": data, "model": body["model"]}
        if reply.send_usage:
            answer["usage"] = self.usage(sum(len(text.split()) for text in inputs))
        return web.json_response(answer)

    # Each host's own shapes.
    returns_documents_by_default = False
    dimensions_field = "dimensions"

    def document_shape(self, text: str):
        return text

    def usage(self, tokens: int) -> dict:
        return {"total_tokens": tokens}

    def rerank_problem(self, body: dict) -> str | None:
        return None

    def embed_problem(self, body: dict, inputs: list[str]) -> str | None:
        return None

    def wants_base64(self, body: dict) -> bool:
        return False


class FakeJina(RerankHost):
    thread_name = "fake-jina"
    limit_field, hits_field = "top_n", "results"
    embed_fields, rerank_fields = JINA_EMBED_FIELDS, JINA_RERANK_FIELDS
    returns_documents_by_default = True

    def __init__(self, *, api_key: str = JINA_KEY):
        super().__init__(api_key=api_key)

    def document_shape(self, text: str):
        return {"text": text}

    def usage(self, tokens: int) -> dict:
        return {"total_tokens": tokens, "prompt_tokens": tokens}

    def embed_problem(self, body: dict, inputs: list[str]) -> str | None:
        if body.get("task") is not None and body["task"] not in JINA_TASKS:
            return f"task must be one of {sorted(JINA_TASKS)}"
        return None

    def wants_base64(self, body: dict) -> bool:
        return body.get("embedding_type") == "base64"


class FakeVoyage(RerankHost):
    thread_name = "fake-voyage"
    limit_field, hits_field = "top_k", "data"
    embed_fields, rerank_fields = VOYAGE_EMBED_FIELDS, VOYAGE_RERANK_FIELDS
    dimensions_field = "output_dimension"

    def __init__(self, *, api_key: str = VOYAGE_KEY):
        super().__init__(api_key=api_key)

    def rerank_problem(self, body: dict) -> str | None:
        if len(body["documents"]) > VOYAGE_MAX_DOCUMENTS:
            return f"The number of documents cannot exceed {VOYAGE_MAX_DOCUMENTS}."
        return None

    def embed_problem(self, body: dict, inputs: list[str]) -> str | None:
        if len(inputs) > VOYAGE_MAX_DOCUMENTS:
            return f"The maximum length of the input list is {VOYAGE_MAX_DOCUMENTS}."
        if body.get("input_type") not in (None, "query", "document"):
            return "input_type must be one of query, document, or null."
        return None

    def wants_base64(self, body: dict) -> bool:
        return body.get("encoding_format") == "base64"
