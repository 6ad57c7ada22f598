"""The OpenAI Embeddings and Moderations routes of the fake OpenAI upstream (tests/fakes/openai_upstream.py),
also served under the Azure fake's deployment path (tests/fakes/azure_openai.py).

What they follow (openai-python 3.51's types and ``lib/_parsing/_embeddings.py``, OpenAI's API
reference for embeddings and moderations):
- ``POST /v1/embeddings`` ``{"model", "input", "dimensions"?, "encoding_format"?, "user"?}``;
  ``input`` a string, an array of strings, an array of tokens or an array of token arrays; at most
  2,048 inputs and 300,000 tokens summed over them, an input never empty. ``dimensions`` only on
  text-embedding-3 models (ada-002: 400 "This model does not support specifying dimensions.").
  Answer ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
  "usage": {"prompt_tokens", "total_tokens"}}``; ``encoding_format: "base64"`` makes each embedding
  the base64 of its float32 values, little-endian (what openai-python decodes with
  ``array("f", base64.b64decode(...))``); the SDK itself asks for base64 unless told otherwise.
- ``POST /v1/moderations`` ``{"model"?, "input"}``; ``input`` a string, an array of strings, or an
  array of ``{"type": "text", "text"}`` / ``{"type": "image_url", "image_url": {"url"}}`` parts
  (omni models only). Answer ``{"id": "modr-...", "model", "results": [{"flagged", "categories",
  "category_scores", "category_applied_input_types"}]}``: one result per string, one for all the
  parts of a multimodal input. text-moderation models answer no category_applied_input_types.
This fake's own choices: a token is a word of a string (an item of a token array); a vector is
fake_vector(input, size) (values k/1024, exact in float32, so base64 round trips are exact), or the
vector a test chose for that text in ``fake.chosen_vectors`` (text -> vector, of any size); the
model's size is 1,536 (text-embedding-3-large: 3,072) unless ``dimensions`` says. A text saying
"kill" is flagged for violence; an image URL saying "gore" for violence/graphic, from the image.
``limits`` lowers the per-call limits (to stand for a host with smaller ones, as Mistral's).

Tests script them with ``fake_openai.enqueue(EmbeddingReply(...))`` (a chat ``Reply`` with an
error status works too); unscripted requests get the default answer.
"""

import array
import base64
import functools
import json
import time
import uuid
import zlib
from dataclasses import dataclass, field

from aiohttp import web

MAX_INPUTS = 2048
MAX_TOKENS = 300_000
SIZES = {"text-embedding-3-large": 3072}
DEFAULT_SIZE = 1536
OMNI_CATEGORIES = {  # name -> the input types its score applies to
    "harassment": ["text"], "harassment/threatening": ["text"], "hate": ["text"], "hate/threatening": ["text"],
    "illicit": ["text"], "illicit/violent": ["text"], "self-harm": ["text", "image"],
    "self-harm/intent": ["text", "image"], "self-harm/instructions": ["text", "image"],
    "sexual": ["text", "image"], "sexual/minors": ["text"], "violence": ["text", "image"],
    "violence/graphic": ["text", "image"],
}


@dataclass
class EmbeddingReply:
    status: int = 200
    error_type: str = "invalid_request_error"
    error_code: str | None = None
    error_message: str = "The fake upstream failed as scripted."
    headers: dict[str, str] = field(default_factory=dict)
    send_usage: bool = True
    reverse: bool = False  # list the embeddings last index first (indexes still right)
    raw_body: str | None = None  # 200 with exactly this text as the body


def fake_vector(item: str | list[int], size: int) -> list[float]:
    """The fake's embedding of an input: a function of the input alone, exact in float32."""
    seed = zlib.crc32(json.dumps(item).encode())
    return [((seed >> (i % 20)) % 2048 - 1024) / 1024 for i in range(size)]


def tokens_of(item: str | list[int]) -> int:
    return len(item.split()) if isinstance(item, str) else len(item)


def encode_base64(vector: list[float]) -> str:
    return base64.b64encode(array.array("f", vector).tobytes()).decode()


def scripted(fake) -> EmbeddingReply:
    reply = fake.next_reply()
    if isinstance(reply, EmbeddingReply):
        return reply
    return EmbeddingReply(status=reply.status, error_type=reply.error_type, error_code=reply.error_code,
                          error_message=reply.error_message, headers=reply.headers)


def invalid(message: str, param: str | None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    return web.json_response(body, status=400, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})


def inputs_of(raw) -> list | None:
    """The inputs of an ``input``: one string, strings, one token array, token arrays; else None."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(item, int) for item in raw):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(item, str | list) for item in raw):
        return raw
    return None


def embeddings_refusal(body: dict, inputs: list | None, limits: tuple[int, int]) -> tuple[str, str | None] | None:
    model = str(body.get("model") or "")
    if not model.startswith("text-embedding"):
        return f"The model `{model}` does not exist or you do not have access to it.", "model"
    if inputs is None or any(not item for item in inputs):
        return "'$.input' is invalid. Please check the API reference.", "input"
    if len(inputs) > limits[0]:
        return f"'$.input' is invalid: at most {limits[0]} inputs per request.", "input"
    total = sum(tokens_of(item) for item in inputs)
    if total > limits[1]:
        return f"Requested {total} tokens, max {limits[1]} tokens per request", "input"
    if body.get("dimensions") is not None and not model.startswith("text-embedding-3"):
        return "This model does not support specifying dimensions.", "dimensions"
    if body.get("encoding_format") not in (None, "float", "base64"):
        return "'encoding_format' must be 'float' or 'base64'.", "encoding_format"
    return None


async def received(fake, request: web.Request) -> tuple[dict, EmbeddingReply, web.Response | None]:
    """Record the request; its body, its scripted reply, and the answer when the key or the script decides it."""
    body = await request.json()
    fake.requests.append({"path": request.path, "headers": dict(request.headers), "body": body,
                          "at": time.monotonic()})
    if fake.api_key is not None and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return body, None, fake.error(401, "Incorrect API key provided.", "invalid_request_error",
                                      "invalid_api_key")
    reply = scripted(fake)
    if reply.status != 200:
        return body, reply, fake.error(reply.status, reply.error_message, reply.error_type, reply.error_code,
                                       reply.headers)
    if reply.raw_body is not None:
        return body, reply, web.Response(text=reply.raw_body, content_type="application/json")
    return body, reply, None


async def embeddings(fake, request: web.Request) -> web.Response:
    body, reply, answered = await received(fake, request)
    if answered is not None:
        return answered
    inputs = inputs_of(body.get("input"))
    problem = embeddings_refusal(body, inputs, getattr(fake, "embedding_limits", (MAX_INPUTS, MAX_TOKENS)))
    if problem:
        return invalid(*problem)
    model = body["model"]
    size = body.get("dimensions") or SIZES.get(model, DEFAULT_SIZE)
    as_base64 = body.get("encoding_format") == "base64"
    chosen = getattr(fake, "chosen_vectors", None) or {}
    vectors = [chosen.get(item) if isinstance(item, str) and item in chosen else fake_vector(item, size)
               for item in inputs]
    data = [{"object": "embedding", "index": index, "embedding": encode_base64(vector) if as_base64 else vector}
            for index, vector in enumerate(vectors)]
    if reply.reverse:
        data.reverse()
    tokens = sum(tokens_of(item) for item in inputs)
    answer: dict = {"object": "list", "data": data, "model": model}
    if reply.send_usage:
        answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return web.json_response(answer, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})


def verdict(parts: list[dict], *, omni: bool) -> dict:
    """One result: for a string, or for all the parts of one multimodal input."""
    scores = dict.fromkeys(OMNI_CATEGORIES, 0.0001)
    applied: dict[str, list[str]] = {name: [] for name in OMNI_CATEGORIES}
    for part in parts:
        if part.get("type") == "text" and "kill" in part.get("text", "").lower():
            scores["violence"] = 0.91
            applied["violence"].append("text")
        if part.get("type") == "image_url" and "gore" in (part.get("image_url") or {}).get("url", ""):
            scores["violence/graphic"] = 0.87
            applied["violence/graphic"].append("image")
    result = {"flagged": any(score > 0.5 for score in scores.values()),
              "categories": {name: score > 0.5 for name, score in scores.items()}, "category_scores": scores}
    if omni:
        result["category_applied_input_types"] = applied
    return result


async def moderations(fake, request: web.Request) -> web.Response:
    body, reply, answered = await received(fake, request)
    if answered is not None:
        return answered
    model = body.get("model") or "omni-moderation-latest"
    omni = model.startswith("omni-moderation")
    raw = body.get("input")
    raw = [raw] if isinstance(raw, str) else raw
    if not isinstance(raw, list) or not raw:
        return invalid("'$.input' is invalid. Please check the API reference.", "input")
    if all(isinstance(item, str) for item in raw):
        results = [verdict([{"type": "text", "text": text}], omni=omni) for text in raw]
    elif all(isinstance(item, dict) and item.get("type") in ("text", "image_url") for item in raw):
        if not omni:
            return invalid(f"{model} does not support image inputs.", "input")
        results = [verdict(raw, omni=True)]
    else:
        return invalid("'$.input' is invalid. Please check the API reference.", "input")
    return web.json_response({"id": f"modr-{uuid.uuid4().hex[:20]}", "model": model, "results": results})


def add_embedding_routes(app: web.Application, fake) -> None:
    app.router.add_post("/v1/embeddings", functools.partial(embeddings, fake))
    app.router.add_post("/v1/moderations", functools.partial(moderations, fake))
