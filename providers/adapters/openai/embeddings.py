"""OpenAI's Embeddings API, as OpenAI, Azure OpenAI and the OpenAI-compatible family serve it.
OpenAICompatibleAdapter.embed delegates here; URLs, auth headers and error mapping are the calling
adapter's (``api``), so Azure's deployment path, api-version and api-key header apply unchanged.

    POST {base_url}/embeddings
        {"model", "input": [str] | [[int]], "dimensions"?, "encoding_format"?: "base64", "user"?}
        -> {"object": "list", "model", "usage": {"prompt_tokens", "total_tokens"},
            "data": [{"object": "embedding", "index", "embedding": [float] | "<base64>"}]}

- ``input`` always goes as a list (a single string is a list of one: the same answer).
- base64: each embedding is the base64 of its float32 values, little-endian (openai-python
  decodes it with ``array("f", base64.b64decode(s))``; numpy with ``dtype="float32"``). It is asked
  for only when the client asked for base64 and the provider declares ``embedding_base64: true``,
  so the bytes pass through unchanged; otherwise the field is left out (float, every host's
  default) and the provider's own digits pass through. Either form is read from any answer.
- ``dimensions`` is sent as asked: the catalog row says which sizes the model takes and the
  endpoint refuses others before admission (embedding_types.check_embedding_options).
- Vectors are put in ``index`` order; an answer whose indexes are not exactly 0..n-1 is malformed.
- Usage: ``prompt_tokens`` (``total_tokens`` where a host reports only that, as Voyage does). A
  host reporting none is counted locally (embedding_batches), flagged estimated.
- Per call at most 2,048 inputs and 300,000 tokens (OpenAI's documented limits); a host with other
  limits declares them: quirks ``embedding_batch_size`` (inputs) and ``embedding_batch_tokens``
  (Mistral: 512 and 16,384; Voyage: 1,000 and 120,000).
- ``embedding_dialect`` (quirk) names a host whose request fields differ from OpenAI's:
    voyage   ``output_dimension`` for dimensions, ``input_type`` query|document; no ``user``,
             no token arrays (docs.voyageai.com/reference/embeddings-api)
    jina     ``task`` retrieval.query|retrieval.passage|text-matching|classification|separation,
             base64 as ``embedding_type``; no ``user``, no token arrays (api.jina.ai/openapi.json)
  The input-type hint goes only to a dialect that has a field for it (OpenAI's has none).
Errors are the calling adapter's (error_from_response): the OpenAI envelope, Azure's additions.
"""

import array
import base64
import binascii
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from providers import errors
from providers.adapters.answers import UnreadableUsage, malformed, token_count
from providers.adapters.embedding_batches import (
    BatchAnswer,
    EmbeddingInput,
    embed_in_batches,
    limit_of,
)
from providers.adapters.http_calls import fetch_json
from providers.embedding_types import EmbeddingRequest, EmbeddingResult
from providers.types import Target

if TYPE_CHECKING:
    from providers.adapters.openai.compatible import OpenAICompatibleAdapter

MAX_INPUTS = 2048
MAX_TOKENS = 300_000


@dataclass(frozen=True, slots=True)
class Dialect:
    dimensions_field: str = "dimensions"
    task_field: str | None = None  # where the input-type hint goes, with tasks naming its values
    tasks: dict[str, str] = field(default_factory=dict)
    base64_field: tuple[str, str] = ("encoding_format", "base64")
    sends_user: bool = True
    takes_token_arrays: bool = True


DIALECTS = {
    "openai": Dialect(),
    "voyage": Dialect(dimensions_field="output_dimension", task_field="input_type",
                      tasks={"query": "query", "document": "document"}, sends_user=False,
                      takes_token_arrays=False),
    "jina": Dialect(task_field="task", tasks={"query": "retrieval.query", "document": "retrieval.passage",
                                              "similarity": "text-matching", "classification": "classification",
                                              "clustering": "separation"},
                    base64_field=("embedding_type", "base64"), sends_user=False, takes_token_arrays=False),
}


def dialect_of(target: Target) -> Dialect:
    name = target.quirks.get("embedding_dialect") or "openai"
    if name not in DIALECTS:
        raise errors.ProviderUnavailable(
            f"{target.provider} declares embedding_dialect '{name}', which the gateway does not speak (one of "
            f"{', '.join(DIALECTS)}); an operator must fix the provider's quirks.", provider=target.provider)
    return DIALECTS[name]


async def embed(request: EmbeddingRequest, target: Target, api: "OpenAICompatibleAdapter") -> EmbeddingResult:
    dialect = dialect_of(target)
    if request.has_token_arrays() and not dialect.takes_token_arrays:
        raise errors.UnsupportedFeature(f"{target.provider} embeds text only, not token arrays: send the text.",
                                        provider=target.provider)

    async def call(batch: Sequence[EmbeddingInput]) -> BatchAnswer:
        prepared = api.post_json(target, "embeddings", embeddings_body(batch, request, target, dialect))
        return parse_embeddings(await fetch_json(prepared, target, api.error_from_response), target)

    return await embed_in_batches(request, target, call,
                                  max_inputs=limit_of(target, "embedding_batch_size", MAX_INPUTS) or MAX_INPUTS,
                                  max_tokens=limit_of(target, "embedding_batch_tokens", MAX_TOKENS))


def embeddings_body(batch: Sequence[EmbeddingInput], request: EmbeddingRequest, target: Target,
                    dialect: Dialect) -> dict[str, Any]:
    body: dict[str, Any] = {"model": target.upstream_model, "input": list(batch)}
    if request.dimensions is not None:
        body[dialect.dimensions_field] = request.dimensions
    task = dialect.tasks.get(request.input_type or "")
    if dialect.task_field and task:
        body[dialect.task_field] = task
    if request.encoding_format == "base64" and target.quirks.get("embedding_base64"):
        name, value = dialect.base64_field
        body[name] = value
    if request.user and dialect.sends_user:
        body["user"] = request.user
    return body


def parse_embeddings(payload: dict[str, Any], target: Target) -> BatchAnswer:
    data = payload.get("data")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise malformed("an embeddings answer without a data list", target)
    indexes = [item.get("index") for item in data]
    if all(type(index) is int for index in indexes):
        if sorted(indexes) != list(range(len(data))):
            raise malformed(f"embedding indexes {sorted(indexes)[:8]} for {len(data)} embeddings", target)
        data = sorted(data, key=lambda item: item["index"])
    vectors = [read_vector(item.get("embedding"), target) for item in data]
    return BatchAnswer(vectors=vectors, input_tokens=reported_tokens(payload.get("usage")),
                       model=str(payload.get("model") or ""))


def reported_tokens(usage: Any) -> int | None:
    """The input tokens an answer reports (prompt_tokens, else total_tokens: Jina has sent a 0
    prompt_tokens beside the real total), or None: absent or not a count, so counted locally."""
    if not isinstance(usage, dict):
        return None
    value = usage.get("prompt_tokens") or usage.get("total_tokens")
    try:
        return None if value is None else token_count(value)
    except UnreadableUsage:
        return None


def read_vector(raw: Any, target: Target) -> list[float]:
    """An embedding as floats: a JSON array of numbers, or base64 float32 (module docstring)."""
    if isinstance(raw, str):
        return decode_base64_vector(raw, target)
    if isinstance(raw, list) and raw and all(type(value) in (float, int) for value in raw):
        return [float(value) for value in raw]
    raise malformed("an embedding that is neither an array of numbers nor base64", target)


def decode_base64_vector(text: str, target: Target) -> list[float]:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise malformed("an embedding that is not valid base64", target) from exc
    if not raw or len(raw) % 4:
        raise malformed(f"a base64 embedding of {len(raw)} bytes, not whole float32 values", target)
    values = array.array("f")
    values.frombytes(raw)
    if sys.byteorder == "big":
        values.byteswap()  # the wire is little-endian
    return values.tolist()
