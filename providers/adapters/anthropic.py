"""Anthropic Messages API: ``POST {base_url}/v1/messages`` with ``x-api-key`` and
``anthropic-version: 2023-06-01``.

Out (IR -> Anthropic):
    system / developer messages  -> top-level ``system`` (text blocks, in order, wherever they stood)
    user text / image parts      -> text blocks; images as ``source`` base64 (data: URLs) or url (http[s])
    assistant message            -> thinking blocks (from reasoning_signature), text, tool_use (input parsed)
    tool messages                -> tool_result blocks in a user turn; consecutive same-role turns merge
    max_output_tokens            -> max_tokens (always sent; see output_limits)
    stop / user                  -> stop_sequences / metadata.user_id
    tools / tool_choice          -> tools with input_schema / {"type": auto | any | none | tool}
    response_format json_schema  -> output_config.format (Anthropic's native structured outputs)
    reasoning_effort             -> thinking {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}
Back: text blocks -> content; thinking -> reasoning (joined) and, with redacted_thinking, one
reasoning_signature (see "Thinking blocks"); tool_use -> tool_calls
(arguments = the input as JSON text); stop_reason -> FINISH_REASONS; usage -> Usage, where
input_tokens = input + cache reads + cache writes (Anthropic reports the three apart).

Decisions:
- max_tokens is required upstream; without one from the client it is DEFAULT_MAX_TOKENS, or the
  provider quirk ``default_max_tokens``. The adapter does not know the catalog's model limits.
- Thinking: the budget comes from THINKING_BUDGETS ("none" sends no thinking). Without a client
  max_tokens, max_tokens becomes max(default, budget + ANSWER_ROOM) (at most 32,000, the smallest
  output limit of the catalog's Claude models). With one, it caps thinking and answer together, as
  OpenAI's max_completion_tokens counts reasoning tokens: max_tokens is ChatRequest.output_limit()
  (a client's max_tokens under THINKING_OUTPUT_FLOOR, 2048, raised to it so both fit; admission
  reserves for the same figure) and the budget half of it, never under Anthropic's floor of 1024.
- Structured output uses the native ``output_config.format`` rather than a forced tool: it works
  with thinking (forced tool_choice does not) and streams as plain text deltas. The schema's
  ``name`` and ``strict`` are not sent: Anthropic's constrained decoding is always strict.
- Refused before any call (UnsupportedFeature): ``seed``, ``response_format`` json_object (Anthropic
  constrains output only to a schema), images in system messages, non-base64 data URLs and image
  types other than jpeg/png/gif/webp, tool_choice forms other than none/auto/required/function.
- Dropped as having no Anthropic equivalent and changing no answer: ``Message.name``, image ``detail``.
- Thinking blocks: every thinking block must go back unchanged, each with its own signature, and
  every redacted_thinking block with its data. reasoning_signature is therefore one opaque JSON
  string, ``{"anthropic": [{"thinking", "signature"} | {"data"}, ...]}``, each entry with ``at``
  (omitted when 0): how many of the blocks a replay rebuilds (the text, once, then each tool_use)
  came before it. A stream sends it once, whole, just before the finish. A replayed turn gets its
  blocks back one-to-one in those places. A plain (non-JSON) string is still read as the signature
  of one block holding the replayed reasoning; JSON that is not ours (Gemini's ``{"gemini": ...}``,
  after a fallback) is ignored, as is reasoning without a signature (Anthropic refuses unsigned
  thinking). Temperature, top_p and tool_choice conflicts with thinking are left to Anthropic's 400.
- Errors: rate_limit_error / 429 -> ProviderRateLimited (Retry-After); overloaded_error (529),
  api_error, timeout_error, 408/409/5xx -> ProviderUnavailable; authentication, permission and
  billing errors -> ProviderAuthFailed (our credential's problem, not the client's); "prompt is
  too long" -> ContextWindowExceeded; other 4xx -> ProviderBadRequest with Anthropic's message.
  An ``event: error`` after output began -> ProviderStreamBroken; before it, mapped like the HTTP
  errors so the router can retry an overloaded upstream. An answer without its content list, or a
  stream event without the index or object it requires -> ProviderMalformed (answers.malformed).
- Streams: tool-call deltas are indexed by the n-th tool_use block (0-based), not Anthropic's block
  index; a tool_use whose input streamed no fragment gets "{}" at its block stop.
"""

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from functools import lru_cache
from typing import Any

import httpx

from providers import errors
from providers.adapters.answers import malformed, token_count, usage_reader
from providers.adapters.base import (
    Adapter,
    fetch_json,
    parse_retry_after,
    relay_stream,
    timeout_for,
)
from providers.types import (
    MIN_THINKING_BUDGET,
    ChatRequest,
    ChatResult,
    ContentPart,
    Delta,
    Finish,
    ImagePart,
    Message,
    StreamEvent,
    Target,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192
ANSWER_ROOM = 4096
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 27904}
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter",
}
TOOL_CHOICES = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
RETRYABLE_TYPES = {"overloaded_error", "api_error", "timeout_error"}
CREDENTIAL_TYPES = {"authentication_error", "permission_error", "billing_error"}
CONTEXT_PHRASES = ("prompt is too long", "exceed context limit", "context window")
# The object a stream event must carry to be read (every content_block_* event also its index).
REQUIRED_OBJECTS = {"message_start": "message", "content_block_start": "content_block", "content_block_delta": "delta"}
COUNTED = {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"}  # count_tokens takes


class AnthropicAdapter(Adapter):
    wire_format = "anthropic"

    async def complete(self, request: ChatRequest, target: Target) -> ChatResult:
        payload = await fetch_json(build_request(request, target, stream=False), target, error_from_response)
        return parse_message(payload, target)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        translator = StreamTranslator(target)
        events = relay_stream(build_request(request, target, stream=True), target, error_from_response, translator,
                              end="message_stop")
        async with aclosing(events):
            async for event in events:
                yield event
        signature = translator.thinking.encode()
        if signature:
            yield Delta(reasoning_signature=signature)
        yield Finish(finish_reason(translator.stop_reason))
        usage = parse_usage(translator.usage)
        if usage is not None:
            yield UsageReport(usage)

    async def count_tokens(self, request: ChatRequest, target: Target) -> int:
        """The request's input tokens by Anthropic's own count (``POST /v1/messages/count_tokens``,
        the Messages body without max_tokens and the sampling settings). Not billed by Anthropic."""
        body = {key: value for key, value in build_body(request, target, stream=False).items() if key in COUNTED}
        http_request = httpx.Request(
            "POST", f"{messages_url(target.base_url)}/count_tokens", headers={
                "x-api-key": target.api_key, "anthropic-version": API_VERSION, "content-type": "application/json"},
            content=json.dumps(body).encode(), extensions={"timeout": timeout_for(target).as_dict()})
        payload = await fetch_json(http_request, target, error_from_response)
        if not isinstance(payload.get("input_tokens"), int):
            raise malformed("a count_tokens answer without input_tokens", target)
        return payload["input_tokens"]


# --- request ---------------------------------------------------------------------------------

@lru_cache(maxsize=256)
def messages_url(base_url: str) -> httpx.URL:
    # The catalog's base URL has no /v1 (as the Anthropic SDK's); an operator's may.
    base = base_url.rstrip("/")
    return httpx.URL(base + ("/messages" if base.endswith("/v1") else "/v1/messages"))


def build_request(request: ChatRequest, target: Target, *, stream: bool) -> httpx.Request:
    headers = {
        "x-api-key": target.api_key,
        "anthropic-version": API_VERSION,
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    return httpx.Request(
        "POST", messages_url(target.base_url), headers=headers,
        content=json.dumps(build_body(request, target, stream=stream)).encode(),
        extensions={"timeout": timeout_for(target).as_dict()},
    )


def unsupported(target: Target, what: str) -> errors.UnsupportedFeature:
    return errors.UnsupportedFeature(f"{target.provider} does not support {what}.", provider=target.provider)


def build_body(request: ChatRequest, target: Target, *, stream: bool) -> dict[str, Any]:
    if request.seed is not None:
        raise unsupported(target, "'seed' (the Messages API has no deterministic sampling); remove it")
    system, messages = encode_conversation(request.messages, target)
    max_tokens, thinking = output_limits(request, target)
    body: dict[str, Any] = {"model": target.upstream_model, "max_tokens": max_tokens, "messages": messages}
    if system:
        body["system"] = system
    if stream:
        body["stream"] = True
    if thinking:
        body["thinking"] = thinking
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = request.stop
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.tools:
        body["tools"] = [encode_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = encode_tool_choice(request.tool_choice, target)
    output_format = encode_response_format(request.response_format, target)
    if output_format:
        body["output_config"] = {"format": output_format}
    return body


def output_limits(request: ChatRequest, target: Target) -> tuple[int, dict[str, Any] | None]:
    """max_tokens and the thinking setting (module docstring: "Thinking")."""
    default = int(target.quirks.get("default_max_tokens", DEFAULT_MAX_TOKENS))
    budget = THINKING_BUDGETS.get(request.reasoning_effort or "none")
    if budget is None:
        return request.max_output_tokens or default, None
    if request.max_output_tokens is None:
        max_tokens = max(default, budget + ANSWER_ROOM)
    else:
        max_tokens = request.output_limit()
        budget = max(MIN_THINKING_BUDGET, min(budget, max_tokens // 2))
    return max_tokens, {"type": "enabled", "budget_tokens": budget}


def encode_conversation(messages: list[Message], target: Target) -> tuple[list[dict], list[dict]]:
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role in ("system", "developer"):
            if isinstance(message.content, list) and any(isinstance(p, ImagePart) for p in message.content):
                raise unsupported(target, "images in system messages; put them in a user message")
            if message.text():
                system.append({"type": "text", "text": message.text()})
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = encode_message_blocks(message, target)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # tool results of one turn share one user message
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def encode_message_blocks(message: Message, target: Target) -> list[dict[str, Any]]:
    if message.role == "tool":
        content = message.content if isinstance(message.content, str) else encode_parts(message.content, target)
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": content or ""}]
    blocks: list[dict[str, Any]] = []
    if isinstance(message.content, str):
        if message.content:
            blocks.append({"type": "text", "text": message.content})
    elif message.content:
        blocks.extend(encode_parts(message.content, target))
    if message.role != "assistant":
        return blocks
    # The text (once) and each tool_use: the places the replayed thinking blocks are put back in.
    groups = ([blocks] if blocks else []) + [
        [{"type": "tool_use", "id": call.id, "name": call.name, "input": parse_arguments(call, target)}]
        for call in message.tool_calls]
    thinking = replayed_thinking(message)
    out: list[dict[str, Any]] = []
    for place, group in enumerate(groups):
        out += [block for at, block in thinking if at == place] + group
    return out + [block for at, block in thinking if at >= len(groups)]


def replayed_thinking(message: Message) -> list[tuple[int, dict[str, Any]]]:
    """The thinking blocks of a replayed assistant turn, each with its place (module docstring)."""
    raw = message.reasoning_signature
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict | list):  # a plain signature: one block over the replayed reasoning
        return [(0, {"type": "thinking", "thinking": message.reasoning or "", "signature": raw})]
    # JSON without our key is another provider's (Gemini's {"gemini": ...}), not ours to send.
    entries = value.get("anthropic") if isinstance(value, dict) else None
    out = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        at = entry.get("at", 0) if type(entry.get("at", 0)) is int else 0
        if isinstance(entry.get("signature"), str) and isinstance(entry.get("thinking"), str):
            out.append((at, {"type": "thinking", "thinking": entry["thinking"], "signature": entry["signature"]}))
        elif isinstance(entry.get("data"), str):
            out.append((at, {"type": "redacted_thinking", "data": entry["data"]}))
    return out


def encode_parts(parts: list[ContentPart] | None, target: Target) -> list[dict[str, Any]]:
    blocks = []
    for part in parts or ():
        if isinstance(part, ImagePart):
            blocks.append({"type": "image", "source": encode_image_source(part.url, target)})
        elif part.text:  # Anthropic refuses empty text blocks
            blocks.append({"type": "text", "text": part.text})
    return blocks


def encode_image_source(url: str, target: Target) -> dict[str, str]:
    if not url.startswith("data:"):
        return {"type": "url", "url": url}
    header, comma, data = url.partition(",")
    media_type, _, encoding = header[len("data:"):].partition(";")
    if not comma or encoding != "base64":
        raise unsupported(target, "image data URLs that are not base64; send data:<type>;base64,...")
    if media_type not in IMAGE_TYPES:
        raise unsupported(target, f"images of type {media_type!r}; send one of {', '.join(sorted(IMAGE_TYPES))}")
    return {"type": "base64", "media_type": media_type, "data": data}


def parse_arguments(call: ToolCall, target: Target) -> dict[str, Any]:
    if not call.arguments.strip():
        return {}
    try:
        value = json.loads(call.arguments)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise errors.ProviderBadRequest(
            f"The arguments of tool call {call.id!r} must be a JSON object for {target.provider}.",
            provider=target.provider,
        )
    return value


def encode_tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    encoded: dict[str, Any] = {
        "name": function.get("name", ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        encoded["description"] = function["description"]
    if function.get("strict") is not None:
        encoded["strict"] = bool(function["strict"])
    return encoded


def encode_tool_choice(choice: str | dict[str, Any], target: Target) -> dict[str, Any]:
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        return TOOL_CHOICES[choice]
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise unsupported(target, f"tool_choice {json.dumps(choice)[:80]}; use none, auto, required or a function")


def encode_response_format(response_format: dict[str, Any] | None, target: Target) -> dict[str, Any] | None:
    kind = (response_format or {}).get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise errors.ProviderBadRequest("'response_format.json_schema.schema' must be a JSON schema object.",
                                            provider=target.provider)
        return {"type": "json_schema", "schema": schema}
    raise unsupported(target, f"response_format {kind!r}; use json_schema with a schema")


# --- response ---------------------------------------------------------------------------------

def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "end_turn", "stop")


@usage_reader
def parse_usage(raw: dict[str, Any]) -> Usage | None:
    reads = token_count(raw.get("cache_read_input_tokens"))
    writes = token_count(raw.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=token_count(raw.get("input_tokens")) + reads + writes,
        output_tokens=token_count(raw.get("output_tokens")),
        reasoning_tokens=token_count((raw.get("output_tokens_details") or {}).get("thinking_tokens")),
        cached_tokens=reads,
        cache_write_tokens=writes,
    )


def parse_message(payload: dict[str, Any], target: Target) -> ChatResult:
    blocks = payload.get("content")
    if not isinstance(blocks, list):
        raise malformed("an answer without its content list", target)
    texts: list[str] = []
    thoughts: list[str] = []
    thinking = ThinkingBlocks()
    calls: list[ToolCall] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
            if block.get("text"):
                thinking.passed(text=True)
        elif kind == "thinking":
            thoughts.append(block.get("thinking") or "")
            thinking.add(thinking=block.get("thinking") or "", signature=block.get("signature") or "")
        elif kind == "redacted_thinking":
            thinking.add(data=block.get("data") or "")
        elif kind == "tool_use":
            calls.append(ToolCall(id=block.get("id", ""), name=block.get("name", ""),
                                  arguments=json.dumps(block.get("input") or {})))
            thinking.passed()
    return ChatResult(
        id=payload.get("id") or f"msg_{uuid.uuid4().hex}",
        content="".join(texts) if texts or not calls else None,
        finish_reason=finish_reason(payload.get("stop_reason")),
        usage=parse_usage(payload.get("usage") or {}) or Usage(),
        tool_calls=calls,
        reasoning="".join(thoughts) or None,
        reasoning_signature=thinking.encode(),
        upstream_model=payload.get("model") or target.upstream_model,
    )


class ThinkingBlocks:
    """An answer's thinking and redacted_thinking blocks, in order, each placed among the blocks a
    replay rebuilds (module docstring: "Thinking blocks"); fed whole or, in a stream, piece by piece."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.places = 0  # rebuilt blocks so far: the text (counted once), then each tool_use
        self.text_seen = False

    def add(self, **entry: str) -> dict[str, Any]:
        self.entries.append({**entry, **({"at": self.places} if self.places else {})})
        return self.entries[-1]

    def passed(self, *, text: bool = False) -> None:
        if not text:
            self.places += 1
        elif not self.text_seen:
            self.text_seen = True
            self.places += 1

    def encode(self) -> str | None:
        # Unsigned thinking cannot go back (Anthropic refuses it), so it is not carried.
        entries = [entry for entry in self.entries if entry.get("signature") or entry.get("data")]
        return json.dumps({"anthropic": entries}, separators=(",", ":")) if entries else None


class StreamTranslator:
    """Anthropic stream events in, IR events out; keeps what spans events (usage, tool indexes)."""

    def __init__(self, target: Target):
        self.target = target
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> n-th tool_use block
        self.tools_with_arguments: set[int] = set()
        self.thinking = ThinkingBlocks()
        self.thinking_index: dict[int, dict[str, Any]] = {}  # Anthropic block index -> its entry
        self.produced = False
        self.ended = False

    def read(self, name: str, data: dict[str, Any]) -> list[StreamEvent]:
        events = self.translate(name, data)
        self.produced = self.produced or bool(events)
        return events

    def translate(self, name: str, data: dict[str, Any]) -> list[StreamEvent]:
        if (name in REQUIRED_OBJECTS and not isinstance(data.get(REQUIRED_OBJECTS[name]), dict)) or (
                name.startswith("content_block_") and type(data.get("index")) is not int):
            raise malformed(f"a {name} event without a field it requires", self.target, produced=self.produced)
        if name == "message_start":
            self.merge_usage((data.get("message") or {}).get("usage"))
        elif name == "content_block_start":
            return self.block_start(data.get("index"), data.get("content_block") or {})
        elif name == "content_block_delta":
            return self.block_delta(data.get("index"), data.get("delta") or {})
        elif name == "content_block_stop":
            position = self.tool_index.get(data.get("index"))
            if position is not None and position not in self.tools_with_arguments:
                return [Delta(tool_calls=[ToolCallDelta(index=position, arguments="{}")])]
        elif name == "message_delta":
            self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.merge_usage(data.get("usage"))
        elif name == "message_stop":
            self.ended = True
        elif name == "error":
            raise stream_error(data, self.target, produced=self.produced)
        return []  # ping, and event types Anthropic may add later, carry nothing for us

    def block_start(self, index: int | None, block: dict[str, Any]) -> list[StreamEvent]:
        kind = block.get("type")
        if kind == "tool_use" and index is not None:
            self.thinking.passed()
            position = self.tool_index[index] = len(self.tool_index)
            return [Delta(tool_calls=[ToolCallDelta(index=position, id=block.get("id"), name=block.get("name"))])]
        if kind == "text" and block.get("text"):
            self.thinking.passed(text=True)
            return [Delta(content=block["text"])]
        if kind == "thinking":
            entry = self.thinking.add(thinking=block.get("thinking") or "", signature=block.get("signature") or "")
            if index is not None:
                self.thinking_index[index] = entry
            return [Delta(reasoning=block["thinking"])] if block.get("thinking") else []
        if kind == "redacted_thinking":
            self.thinking.add(data=block.get("data") or "")
        return []

    def block_delta(self, index: int | None, delta: dict[str, Any]) -> list[StreamEvent]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            self.thinking.passed(text=True)
            return [Delta(content=delta["text"])]
        entry = self.thinking_index.get(index)
        if kind == "thinking_delta" and delta.get("thinking"):
            if entry is not None:
                entry["thinking"] += delta["thinking"]
            return [Delta(reasoning=delta["thinking"])]
        if kind == "signature_delta" and entry is not None:
            entry["signature"] += delta.get("signature") or ""  # sent once, at the block's end
            return []
        position = self.tool_index.get(index)
        if kind == "input_json_delta" and position is not None and delta.get("partial_json"):
            self.tools_with_arguments.add(position)
            return [Delta(tool_calls=[ToolCallDelta(index=position, arguments=delta["partial_json"])])]
        return []

    def merge_usage(self, raw: dict[str, Any] | None) -> None:
        # message_delta's counts are cumulative: the latest value of each field wins.
        self.usage.update({key: value for key, value in (raw or {}).items() if value is not None})


# --- errors -----------------------------------------------------------------------------------

def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    detail = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(detail, dict):
        detail = {"type": "", "message": body[:200].decode(errors="replace")}
    error = error_from_detail(detail, target, status=status)
    error.retry_after = parse_retry_after(headers)
    return error


def stream_error(data: dict[str, Any], target: Target, *, produced: bool) -> errors.ProviderError:
    detail = data.get("error") if isinstance(data.get("error"), dict) else {}
    if produced:
        return errors.ProviderStreamBroken(
            f"{target.provider} failed mid-stream ({detail.get('type') or 'error'}): "
            f"{redact(str(detail.get('message') or 'no message'), target)}",
            provider=target.provider,
        )
    return error_from_detail(detail, target, status=None)


def redact(message: str, target: Target) -> str:
    return message.replace(target.api_key, "[redacted]") if target.api_key else message


def error_from_detail(detail: dict[str, Any], target: Target, *, status: int | None) -> errors.ProviderError:
    kind = str(detail.get("type") or "")
    message = redact(str(detail.get("message") or "no message"), target)
    text = f"{target.provider} returned {status or 'a stream error'} ({kind or 'unknown'}): {message}"
    kwargs: dict[str, Any] = {"provider": target.provider, "upstream_status": status}
    if kind == "rate_limit_error" or status == 429:
        return errors.ProviderRateLimited(text, **kwargs)
    if kind in RETRYABLE_TYPES or status in (408, 409) or (status or 0) >= 500:
        return errors.ProviderUnavailable(text, **kwargs)
    if kind in CREDENTIAL_TYPES or status in (401, 402, 403):
        return errors.ProviderAuthFailed(text, **kwargs)
    if kind == "not_found_error" or status == 404:
        return errors.ProviderNotFound(text, **kwargs)
    if any(phrase in message.lower() for phrase in CONTEXT_PHRASES):
        return errors.ContextWindowExceeded(text, **kwargs)
    return errors.ProviderBadRequest(text, **kwargs)
