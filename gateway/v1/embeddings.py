"""POST /v1/embeddings in OpenAI's shape, for every embedding model of the catalog.

    {"model", "input": "text" | ["text", ...] | [token, ...] | [[token, ...], ...],
     "encoding_format"?: "float" | "base64", "dimensions"?: int, "user"?: str,
     "input_type"?: "query" | "document" | ...}   (input_type: Cohere/Gemini/Voyage/Jina's hint)
    -> {"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
        "usage": {"prompt_tokens", "total_tokens"}}

base64 is the vector's little-endian float32 bytes, as the openai SDK decodes it
(numpy.frombuffer(base64.b64decode(s), dtype="float32")).
"""

import base64
import struct
from typing import Any

from django.http import JsonResponse

from gateway.serving.retrieval import serve_embeddings
from gateway.v1.admission import authenticated_call, read_json
from gateway.v1.errors import api_view, bad_request
from gateway.v1.json_body import decoder, expect, positive_int
from gateway.v1.openai_chat import model_of, refuse_unknown
from providers.embedding_types import INPUT_TYPES, EmbeddingRequest, EmbeddingResult

FIELDS = {"model", "input", "encoding_format", "dimensions", "user", "input_type"}
MAX_INPUTS = 8192  # the gateway splits them into each provider's own batch size
ENCODINGS = ("float", "base64")


@api_view
async def embeddings(request):
    call = await authenticated_call(request, method="POST")
    embedding_request = decode(read_json(request))
    outcome = await serve_embeddings(call, embedding_request)
    return JsonResponse(encode(outcome.result, model=embedding_request.model,
                               encoding=embedding_request.encoding_format))


@decoder
def decode(payload: dict[str, Any]) -> EmbeddingRequest:
    refuse_unknown(payload, FIELDS)
    model = model_of(payload)
    encoding = payload.get("encoding_format") or "float"
    if encoding not in ENCODINGS:
        raise bad_request(f"'encoding_format' must be 'float' or 'base64', not {encoding!r}.",
                          param="encoding_format")
    input_type = payload.get("input_type")
    if input_type is not None and input_type not in INPUT_TYPES:
        raise bad_request(f"'input_type' must be one of {', '.join(INPUT_TYPES)}, not {input_type!r}.",
                          param="input_type")
    user = payload.get("user")
    if user is not None:
        expect(user, str, "user", "a string")
    return EmbeddingRequest(model=model, inputs=decode_input(payload.get("input")),
                            dimensions=positive_int(payload, "dimensions"), input_type=input_type, user=user,
                            encoding_format=encoding)


def decode_input(value: Any) -> list[str] | list[list[int]]:
    """A string, strings, a token array or token arrays: one vector each."""
    if value is None:
        raise bad_request("'input' is required: the text to embed, or a list of texts.", param="input",
                          code="missing_required_parameter")
    if isinstance(value, str):
        value = [value]
    expect(value, list, "input", "a string or an array")
    if not value:
        raise bad_request("'input' is empty: send at least one text.", param="input")
    if len(value) > MAX_INPUTS:
        raise bad_request(f"'input' has {len(value)} items; send at most {MAX_INPUTS} per request.", param="input")
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        if min(value) < 0:
            raise bad_request("'input' holds a negative token id; token ids are 0 or more.", param="input")
        return [value]  # one token array
    for index, item in enumerate(value):
        if isinstance(item, str):
            if not item:
                raise bad_request(f"'input[{index}]' is an empty string; every input needs text.", param="input")
        elif not (isinstance(item, list) and item and all(
                isinstance(token, int) and not isinstance(token, bool) and token >= 0 for token in item)):
            raise bad_request(f"'input[{index}]' must be a string or an array of token ids.", param="input",
                              code="invalid_type")
    if len({isinstance(item, str) for item in value}) > 1:
        raise bad_request("'input' mixes texts and token arrays; send one kind.", param="input")
    return value


def encode(result: EmbeddingResult, *, model: str, encoding: str) -> dict[str, Any]:
    data = [{"object": "embedding", "index": index,
             "embedding": as_base64(vector) if encoding == "base64" else vector}
            for index, vector in enumerate(result.vectors)]
    tokens = result.usage.input_tokens
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def as_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
