"""The cache key of a request: the tenant, the public model and a canonical form of everything
that changes the answer, hashed (SHA-256).

A chat's canonical form is its ChatRequest (the one every chat protocol decodes into, so the same
question asked at /v1/chat/completions, /v1/messages or /v1/responses has one key) without what
only changes how the answer is sent or filed: whether it streams, the usage chunk, the end user's
id, the client's metadata tags, the legacy function_call shape, the ceiling flag of max_tokens
(applied before the key is taken). Any other field, those added later included, is part of the
key: an unknown field can only make two requests differ, never make different requests alike.
Numbers that mean the same are written the same (temperature 0 and 0.0).

An embedding request's canonical form is its inputs, dimensions, input type and encoding.
"""

import hashlib
import json
from dataclasses import fields, is_dataclass
from typing import Any

from providers.embedding_types import EmbeddingRequest
from providers.types import ChatRequest

VERSION = 1
NOT_IN_KEY = ("model", "stream", "include_usage", "user", "metadata", "legacy_functions", "output_is_ceiling",
              "web_search_calls", "tool_runs")
FLOATS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")


def digest_of(tenant_id: int, kind: str, model: str, canonical: Any) -> str:
    text = json.dumps({"v": VERSION, "tenant": tenant_id, "kind": kind, "model": model, "request": canonical},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_FIELDS: dict[type, tuple[str, ...]] = {}  # a dataclass's field names (dataclasses.fields is slow)


def field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(field.name for field in fields(cls)) if is_dataclass(cls) else ()
    return names


def plain(value: Any) -> Any:
    """``value`` as JSON-like data, as dataclasses.asdict makes it, at a fraction of its cost."""
    names = field_names(type(value))
    if names:
        return {name: plain(getattr(value, name)) for name in names}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def canonical_chat(chat: ChatRequest) -> dict[str, Any]:
    canonical = {name: plain(getattr(chat, name)) for name in field_names(ChatRequest) if name not in NOT_IN_KEY}
    for name in FLOATS:
        if canonical.get(name) is not None:
            canonical[name] = float(canonical[name])
    return canonical


def canonical_embeddings(request: EmbeddingRequest) -> dict[str, Any]:
    return {"inputs": request.inputs, "dimensions": request.dimensions, "input_type": request.input_type,
            "encoding_format": request.encoding_format}


def last_user_index(chat: ChatRequest) -> int | None:
    return next((index for index in range(len(chat.messages) - 1, -1, -1)
                 if chat.messages[index].role == "user"), None)


def semantic_parts(chat: ChatRequest, canonical: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The request without its last user message's text (its scope: what must match exactly),
    and that text; None when there is no such message or it holds more than text."""
    index = last_user_index(chat)
    if index is None:
        return None
    message = chat.messages[index]
    if not isinstance(message.content, str) and any(part.type != "text" for part in message.content or ()):
        return None
    text = message.text().strip()
    if not text:
        return None
    scope = {**canonical, "messages": [dict(item) for item in canonical["messages"]]}
    scope["messages"][index]["content"] = None
    return scope, text
