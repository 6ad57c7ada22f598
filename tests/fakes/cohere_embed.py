"""The Embed and Rerank v2 routes of the fake Cohere upstream (tests/fakes/cohere_upstream.py).

What they follow (docs.cohere.com/reference/embed and /reference/rerank, v2; cohere-python's v2
types as Bifrost's schema copies them):
- ``POST /v2/embed`` ``{"model", "input_type", "texts": [str], "embedding_types"?: ["float" | "int8"
  | "uint8" | "binary" | "ubinary" | "base64"], "output_dimension"?, "max_tokens"?, "truncate"?}``:
  ``input_type`` required (v3 models on: search_document | search_query | classification |
  clustering | image); at most 96 texts; ``output_dimension`` 256, 512, 1024 or 1536, embed-v4.0
  only. Answer ``{"id", "response_type": "embeddings_by_type", "embeddings": {"float": [[float]]},
  "texts", "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens"}}}``.
- ``POST /v2/rerank`` ``{"model", "query", "documents": [str], "top_n"?, "max_tokens_per_doc"?}``
  (v2 takes strings only; structured data as YAML strings). Answer ``{"id", "results": [{"index",
  "relevance_score"}], "meta": {"api_version", "billed_units": {"search_units"}}}``, one search
  unit per query and up to 100 documents.
- Errors ``{"message": str}``; like the chat route, a field Cohere does not have is a 400.
This fake's own choices: a billed token is a word; vectors are openai_embeddings.fake_vector
(embed-v4.0: 1,536 values, the v3 models 1,024); relevance as tests/fakes/rerank_hosts.py ranks.

Tests script them with ``fake_cohere.enqueue(CohereEmbedReply(...))`` (a chat ``Reply`` with an
error status works too); unscripted requests get the default answer.
"""

import functools
import math
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.openai_embeddings import fake_vector
from tests.fakes.rerank_hosts import ranked

MAX_TEXTS = 96
SIZES = {"embed-v4.0": 1536, "embed-english-v3.0": 1024, "embed-multilingual-v3.0": 1024}
RERANK_MODELS = {"rerank-v3.5", "rerank-english-v3.0", "rerank-multilingual-v3.0", "rerank-v4.0-pro"}
INPUT_TYPES = {"search_document", "search_query", "classification", "clustering", "image"}
EMBED_FIELDS = {"model", "input_type", "texts", "images", "inputs", "embedding_types", "output_dimension",
                "max_tokens", "truncate"}
RERANK_FIELDS = {"model", "query", "documents", "top_n", "max_tokens_per_doc"}
META = {"api_version": {"version": "2", "is_experimental": False}}


@dataclass
class CohereEmbedReply:
    status: int = 200
    error_message: str = "internal server error"
    headers: dict[str, str] = field(default_factory=dict)
    send_billed_units: bool = True


def scripted(fake) -> CohereEmbedReply:
    reply = fake.next_reply()
    if isinstance(reply, CohereEmbedReply):
        return reply
    return CohereEmbedReply(status=reply.status, error_message=reply.error_message, headers=reply.headers)


async def admit(fake, request: web.Request, fields: set[str]) -> tuple[dict, CohereEmbedReply, web.Response | None]:
    body = await request.json()
    fake.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
    if request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return body, CohereEmbedReply(), fake.error(401, "invalid api token")
    unknown = sorted(set(body) - fields)
    if unknown:
        return body, CohereEmbedReply(), fake.error(400, f"invalid request: unknown field: {unknown[0]}")
    reply = scripted(fake)
    if reply.status != 200:
        return body, reply, fake.error(reply.status, reply.error_message, reply.headers)
    return body, reply, None


def embed_problem(body: dict) -> str | None:
    model, texts = body.get("model"), body.get("texts")
    if model not in SIZES:
        return f"model '{model}' not found, make sure the correct model ID was used and that you have access to it"
    if body.get("input_type") not in INPUT_TYPES:
        return "invalid request: input_type is required for embed models v3 and higher"
    if not isinstance(texts, list) or not 1 <= len(texts) <= MAX_TEXTS or not all(isinstance(t, str) for t in texts):
        return f"invalid request: texts must be a list of between 1 and {MAX_TEXTS} strings"
    if set(body.get("embedding_types") or ["float"]) - {"float", "int8", "uint8", "binary", "ubinary", "base64"}:
        return "invalid request: embedding_types contains an invalid type"
    dimension = body.get("output_dimension")
    if dimension is not None and (model != "embed-v4.0" or dimension not in (256, 512, 1024, 1536)):
        return "invalid request: output_dimension is only available for embed-v4.0 and must be 256, 512, 1024 or 1536"
    return None


async def embed(fake, request: web.Request) -> web.Response:
    body, reply, refused = await admit(fake, request, EMBED_FIELDS)
    if refused is not None:
        return refused
    problem = embed_problem(body)
    if problem:
        return fake.error(404 if "not found" in problem else 400, problem)
    size = body.get("output_dimension") or SIZES[body["model"]]
    texts = body["texts"]
    meta = dict(META)
    if reply.send_billed_units:
        meta["billed_units"] = {"input_tokens": sum(len(text.split()) for text in texts)}
    return web.json_response({"id": str(uuid.uuid4()), "response_type": "embeddings_by_type", "texts": texts,
                              "embeddings": {"float": [fake_vector(text, size) for text in texts]}, "meta": meta})


async def rerank(fake, request: web.Request) -> web.Response:
    body, reply, refused = await admit(fake, request, RERANK_FIELDS)
    if refused is not None:
        return refused
    documents = body.get("documents")
    if body.get("model") not in RERANK_MODELS:
        return fake.error(404, f"model '{body.get('model')}' not found")
    if not isinstance(documents, list) or not documents or not all(isinstance(text, str) for text in documents):
        return fake.error(400, "invalid request: documents must be a list of strings")
    results = [{"index": index, "relevance_score": score}
               for index, score in ranked(body.get("query") or "", documents, body.get("top_n"))]
    meta = dict(META)
    if reply.send_billed_units:
        meta["billed_units"] = {"search_units": math.ceil(len(documents) / 100)}
    return web.json_response({"id": str(uuid.uuid4()), "results": results, "meta": meta})


def add_embed_routes(app: web.Application, fake) -> None:
    app.router.add_post("/v2/embed", functools.partial(embed, fake))
    app.router.add_post("/v2/rerank", functools.partial(rerank, fake))
