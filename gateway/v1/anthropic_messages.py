"""Anthropic Messages as a client protocol: decode a request, encode a Message, its stream, errors.

Tollgate is the server here (WIRE_FORMATS.md section 4), so the anthropic SDK works against any
model of the catalog; the canonical request (providers.types) is all the router sees.

In (Anthropic -> IR):
    system (string or text blocks)  -> one system message, blocks joined by a blank line
    user text / image blocks        -> text / image parts (base64 source -> data: URL; url source kept)
    user tool_result blocks         -> tool messages, before the user message of the rest of the turn
    assistant text / tool_use       -> content / tool_calls (input -> JSON arguments)
    assistant thinking blocks       -> reasoning (joined) and reasoning_signature (the first non-empty)
    max_tokens (required)           -> max_output_tokens
    stop_sequences / metadata.user_id -> stop / user
    tools (input_schema)            -> OpenAI-shaped function tools
    tool_choice auto|any|none|tool  -> "auto" | "required" | "none" | {"type": "function", ...}
    thinking / output_config.effort -> reasoning_effort (THINKING_EFFORTS, below)
    output_config.format            -> response_format json_schema
Out: a Message with blocks thinking (reasoning + signature), text, tool_use (arguments parsed);
stop_reason from STOP_REASONS; usage with input_tokens excluding the cache reads and writes, which
are reported beside it as Anthropic does.

Decisions:
- thinking: ``enabled`` maps its budget_tokens to the effort whose budget the Anthropic adapter
  sends back (1024-4095 -> low, 4096-16383 -> medium, 16384 and more -> high), so a Claude model
  gets about the budget asked for and other reasoning models a comparable effort. ``adaptive`` and
  ``between_tools`` are output_config.effort, else medium; ``disabled`` sends none, whatever the
  effort. budget_tokens must be >= 1024 and < max_tokens, as Anthropic says. output_config.effort
  alone (low .. max) is the effort as given.
- reasoning_signature is opaque: the block's signature is whatever the provider's adapter made
  (for Claude, every thinking block of the answer), and the client's replay of it goes back
  unchanged. A stream gets the signature at the end (adapters send it after the text), so it
  arrives in a thinking block of its own after the others; a replay joins them again.
  redacted_thinking blocks from a client are dropped: only a signature can carry them.
- tool_result ``is_error`` has no field in the IR: the result's text is prefixed with "Error: ".
- Accepted and not forwarded, changing no answer: cache_control (top level, on blocks and tools),
  service_tier, citations on text blocks, tool_choice.disable_parallel_tool_use.
- Refused (400 naming them): unknown fields, top_k (the IR has none), server tools, document
  and other block types, images in system prompts.
- A stream's message_start carries the gateway's input estimate (the provider reports the real
  count at the end); message_delta carries the exact usage, which the SDK's message takes.
- Generated images (Gemini image models) become image blocks with a base64 source, as requests
  send them; citations (search-grounded models) have no Anthropic shape here and are not sent.
"""

import json
from typing import Any

from gateway.v1.errors import GatewayError, bad_request
from gateway.v1.json_body import decoder
from gateway.v1.openai_chat import expect, number_in, positive_int
from providers.types import (
    ChatRequest,
    ChatResult,
    ContentPart,
    Delta,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    Usage,
)

SUPPORTED = {
    "model", "messages", "max_tokens", "system", "stream", "temperature", "top_p", "stop_sequences", "tools",
    "tool_choice", "thinking", "metadata", "output_config",
}
IGNORED = {"service_tier", "cache_control"}
# POST /v1/messages/count_tokens takes the prompt only: no max_tokens, no sampling settings.
COUNT_SUPPORTED = {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"}
COUNT_MAX_TOKENS = 1 << 30  # stands in for the max_tokens a count has none of (thinking budgets stay below it)
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
MIN_THINKING_BUDGET = 1024
THINKING_EFFORTS = ((16384, "high"), (4096, "medium"), (MIN_THINKING_BUDGET, "low"))
EFFORTS = ("low", "medium", "high", "xhigh", "max")
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 504: "timeout_error",
    529: "overloaded_error",
}


# --- errors -----------------------------------------------------------------------------------

def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def envelope(error: GatewayError, request_id: str) -> dict[str, Any]:
    """Anthropic's error body; the SDK picks the exception from the status, as for Anthropic."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(error.status), "message": error.message}}
    if request_id:
        body["request_id"] = request_id
    return body


# --- request ----------------------------------------------------------------------------------

@decoder
def decode(payload: dict[str, Any]) -> ChatRequest:
    return decode_payload(payload)


def decode_payload(payload: dict[str, Any]) -> ChatRequest:
    unknown = sorted(set(payload) - SUPPORTED - IGNORED)
    if "top_k" in unknown:
        raise bad_request("top_k: not supported by the gateway (its models do not all take it); remove it.",
                          param="top_k")
    if unknown:
        raise bad_request(f"{', '.join(unknown)}: Extra inputs are not permitted.", param=unknown[0],
                          code="unknown_parameter")
    for name in ("model", "max_tokens", "messages"):
        if name not in payload:
            raise bad_request(f"{name}: Field required", param=name, code="missing_required_parameter")
    model = expect(payload["model"], str, "model", "a model id such as 'demo/echo'")
    max_tokens = positive_int(payload, "max_tokens")
    if max_tokens is None:
        raise bad_request("max_tokens: Field required", param="max_tokens", code="missing_required_parameter")
    stream = payload.get("stream") or False
    expect(stream, bool, "stream", "true or false")
    stop = payload.get("stop_sequences") or []
    expect(stop, list, "stop_sequences", "a list of strings")
    if not all(isinstance(item, str) and item for item in stop):
        raise bad_request("stop_sequences: each must be a non-empty string.", param="stop_sequences")
    tools = decode_tools(payload.get("tools"))
    messages = decode_system(payload.get("system")) + decode_messages(payload["messages"])
    response_format, effort = decode_output_config(payload.get("output_config"))
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        max_output_tokens=max_tokens,
        temperature=number_in(payload, "temperature", 0, 1),
        top_p=number_in(payload, "top_p", 0, 1),
        stop=stop,
        tools=tools,
        tool_choice=decode_tool_choice(payload.get("tool_choice"), tools),
        response_format=response_format,
        reasoning_effort=decode_thinking(payload.get("thinking"), max_tokens, effort),
        user=decode_user(payload.get("metadata")),
    )


@decoder
def decode_count(payload: dict[str, Any]) -> ChatRequest:
    """A count_tokens request: the Messages request without max_tokens and the sampling settings,
    checked the same way."""
    unknown = sorted(set(payload) - COUNT_SUPPORTED - {"cache_control"})
    if unknown:
        raise bad_request(f"{', '.join(unknown)}: Extra inputs are not permitted.", param=unknown[0],
                          code="unknown_parameter")
    return decode_payload({**payload, "max_tokens": COUNT_MAX_TOKENS})


def decode_system(value: Any) -> list[Message]:
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        return [Message(role="system", content=value)]
    expect(value, list, "system", "a string or a list of text blocks")
    texts = []
    for index, block in enumerate(value):
        where = f"system.{index}"
        expect(block, dict, where, "a text block")
        if block.get("type") != "text":
            raise bad_request(f"{where}.type: system blocks must be text blocks.", param=f"{where}.type")
        texts.append(expect(block.get("text"), str, f"{where}.text", "a string"))
    return [Message(role="system", content="\n\n".join(texts))]


def decode_messages(value: Any) -> list[Message]:
    expect(value, list, "messages", "a list of messages")
    if not value:
        raise bad_request("messages: at least one message is required.", param="messages")
    messages: list[Message] = []
    for index, raw in enumerate(value):
        where = f"messages.{index}"
        expect(raw, dict, where, "an object with 'role' and 'content'")
        role = raw.get("role")
        if role not in ("user", "assistant"):
            raise bad_request(f"{where}.role: must be 'user' or 'assistant', not {json.dumps(role)}.",
                              param=f"{where}.role")
        content = raw.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        expect(content, list, f"{where}.content", "a string or a list of content blocks")
        if not content:
            raise bad_request(f"{where}.content: must not be empty.", param=f"{where}.content")
        if role == "user":
            messages.extend(decode_user_turn(content, where))
        else:
            messages.append(decode_assistant_turn(content, where))
    return messages


def block_at(block: Any, where: str, kinds: set[str]) -> str:
    expect(block, dict, where, "a content block")
    kind = block.get("type")
    if not isinstance(kind, str) or kind not in kinds:
        raise bad_request(f"{where}.type: expected one of {', '.join(sorted(kinds))}, not {json.dumps(kind)}.",
                          param=f"{where}.type")
    return kind


def decode_user_turn(blocks: list, where: str) -> list[Message]:
    """Tool results first, as tool messages (they answer the previous assistant turn), then the
    rest of the turn as one user message."""
    results: list[Message] = []
    parts: list[ContentPart] = []
    for index, block in enumerate(blocks):
        at = f"{where}.content.{index}"
        if block_at(block, at, {"text", "image", "tool_result"}) == "tool_result":
            results.append(decode_tool_result(block, at))
        else:
            parts.append(decode_part(block, at))
    if parts:
        user = Message(role="user", content=parts)
        if all(isinstance(part, TextPart) for part in parts):
            user.content = "".join(part.text for part in parts) if len(parts) == 1 else parts
        results.append(user)
    return results


def decode_part(block: dict, where: str) -> ContentPart:
    if block["type"] == "text":
        return TextPart(expect(block.get("text"), str, f"{where}.text", "a string"))
    source = expect(block.get("source"), dict, f"{where}.source", "an object")
    if source.get("type") == "base64":
        media_type = source.get("media_type")
        if media_type not in IMAGE_TYPES:
            raise bad_request(f"{where}.source.media_type: must be one of {', '.join(sorted(IMAGE_TYPES))}.",
                              param=f"{where}.source.media_type")
        data = expect(source.get("data"), str, f"{where}.source.data", "base64 text")
        return ImagePart(url=f"data:{media_type};base64,{data}")
    if source.get("type") == "url":
        url = expect(source.get("url"), str, f"{where}.source.url", "a URL")
        if not url.startswith(("https://", "http://")):
            raise bad_request(f"{where}.source.url: must be an http(s) URL.", param=f"{where}.source.url")
        return ImagePart(url=url)
    raise bad_request(f"{where}.source.type: must be 'base64' or 'url'.", param=f"{where}.source.type")


def decode_tool_result(block: dict, where: str) -> Message:
    tool_use_id = expect(block.get("tool_use_id"), str, f"{where}.tool_use_id", "a string")
    content = block.get("content", "")
    if isinstance(content, list):
        parts = []
        for index, part in enumerate(content):
            block_at(part, f"{where}.content.{index}", {"text", "image"})
            parts.append(decode_part(part, f"{where}.content.{index}"))
        content = parts if any(isinstance(part, ImagePart) for part in parts) else "".join(
            part.text for part in parts)
    expect(content, (str, list), f"{where}.content", "a string or a list of text and image blocks")
    if block.get("is_error"):
        content = [TextPart("Error: "), *content] if isinstance(content, list) else f"Error: {content}"
    return Message(role="tool", content=content, tool_call_id=tool_use_id)


def decode_assistant_turn(blocks: list, where: str) -> Message:
    texts: list[str] = []
    thoughts: list[str] = []
    signature = ""
    calls: list[ToolCall] = []
    for index, block in enumerate(blocks):
        at = f"{where}.content.{index}"
        kind = block_at(block, at, {"text", "tool_use", "thinking", "redacted_thinking"})
        if kind == "text":
            texts.append(expect(block.get("text"), str, f"{at}.text", "a string"))
        elif kind == "tool_use":
            arguments = expect(block.get("input", {}), dict, f"{at}.input", "an object")
            calls.append(ToolCall(id=expect(block.get("id"), str, f"{at}.id", "a string"),
                                  name=expect(block.get("name"), str, f"{at}.name", "a string"),
                                  arguments=json.dumps(arguments)))
        elif kind == "thinking":
            thoughts.append(expect(block.get("thinking", ""), str, f"{at}.thinking", "a string"))
            signature = signature or expect(block.get("signature", ""), str, f"{at}.signature", "a string")
    return Message(role="assistant", content="".join(texts) if texts or not calls else None, tool_calls=calls,
                   reasoning="".join(thoughts) or None, reasoning_signature=signature or None)


def decode_tools(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    expect(value, list, "tools", "a list of tools")
    tools = []
    for index, tool in enumerate(value):
        where = f"tools.{index}"
        expect(tool, dict, where, "a tool object")
        if tool.get("type") not in (None, "custom"):
            raise bad_request(f"{where}.type: server tools ({tool.get('type')}) are not supported by the gateway; "
                              "declare your own tools with name and input_schema.", param=f"{where}.type")
        schema = expect(tool.get("input_schema"), dict, f"{where}.input_schema", "a JSON schema object")
        function: dict[str, Any] = {"name": expect(tool.get("name"), str, f"{where}.name", "a string"),
                                    "parameters": schema}
        if tool.get("description") is not None:
            function["description"] = expect(tool["description"], str, f"{where}.description", "a string")
        if tool.get("strict") is not None:
            function["strict"] = expect(tool["strict"], bool, f"{where}.strict", "true or false")
        tools.append({"type": "function", "function": function})
    return tools


def decode_tool_choice(value: Any, tools: list | None) -> str | dict[str, Any] | None:
    if value is None:
        return None
    expect(value, dict, "tool_choice", "an object such as {'type': 'auto'}")
    kind = value.get("type")
    if kind == "tool":
        name = expect(value.get("name"), str, "tool_choice.name", "a tool name")
        return {"type": "function", "function": {"name": name}}
    if not isinstance(kind, str) or kind not in TOOL_CHOICES:
        raise bad_request("tool_choice.type: must be 'auto', 'any', 'tool' or 'none'.", param="tool_choice.type")
    if not tools and kind != "none":
        raise bad_request("tool_choice: requires tools.", param="tool_choice")
    return TOOL_CHOICES[kind]


def decode_output_config(value: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The response_format and the effort output_config asks for."""
    if value is None:
        return None, None
    expect(value, dict, "output_config", "an object")
    extra = sorted(set(value) - {"effort", "format"})
    if extra:
        raise bad_request(f"output_config.{extra[0]}: Extra inputs are not permitted.",
                          param=f"output_config.{extra[0]}")
    effort = value.get("effort")
    if effort is not None and effort not in EFFORTS:
        raise bad_request(f"output_config.effort: must be one of {', '.join(EFFORTS)}.", param="output_config.effort")
    output_format = value.get("format")
    if output_format is None:
        return None, effort
    expect(output_format, dict, "output_config.format", "an object")
    if output_format.get("type") != "json_schema":
        raise bad_request("output_config.format.type: must be 'json_schema'.", param="output_config.format.type")
    schema = expect(output_format.get("schema"), dict, "output_config.format.schema", "a JSON schema object")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}, effort


def decode_thinking(value: Any, max_tokens: int, effort: str | None) -> str | None:
    if value is None:
        return effort
    expect(value, dict, "thinking", "an object such as {'type': 'enabled', 'budget_tokens': 2048}")
    kind = value.get("type")
    if kind == "disabled":
        return None
    if kind in ("adaptive", "between_tools"):
        return effort or "medium"
    if kind != "enabled":
        raise bad_request("thinking.type: must be 'enabled', 'adaptive', 'between_tools' or 'disabled'.",
                          param="thinking.type")
    budget = positive_int(value, "budget_tokens")
    if budget is None or budget < MIN_THINKING_BUDGET:
        raise bad_request(f"thinking.budget_tokens: must be at least {MIN_THINKING_BUDGET}.",
                          param="thinking.budget_tokens")
    if budget >= max_tokens:
        raise bad_request("max_tokens: must be greater than thinking.budget_tokens.", param="max_tokens")
    return effort or next(level for floor, level in THINKING_EFFORTS if budget >= floor)


def decode_user(value: Any) -> str | None:
    if value is None:
        return None
    expect(value, dict, "metadata", "an object")
    extra = sorted(set(value) - {"user_id"})
    if extra:
        raise bad_request(f"metadata.{extra[0]}: Extra inputs are not permitted.", param=f"metadata.{extra[0]}")
    user = value.get("user_id")
    return expect(user, str, "metadata.user_id", "a string") if user is not None else None


# --- response ---------------------------------------------------------------------------------

def encode_usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": max(0, usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def stop_reason(finish_reason: str) -> str:
    return STOP_REASONS.get(finish_reason, "end_turn")


def parse_input(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic sends; text that is not a JSON object
    (a model's malformed output) is kept whole rather than lost."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def image_block(url: str) -> dict[str, Any]:
    header, _, data = url.partition(",")
    media_type = header[len("data:"):].partition(";")[0]
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def encode_message(result: ChatResult, *, message_id: str, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if result.reasoning or result.reasoning_signature:
        content.append({"type": "thinking", "thinking": result.reasoning or "",
                        "signature": result.reasoning_signature or ""})
    if result.content or not (result.tool_calls or result.images):
        content.append({"type": "text", "text": result.content or ""})
    content += [image_block(url) for url in result.images]
    content += [{"type": "tool_use", "id": call.id, "name": call.name, "input": parse_input(call.arguments)}
                for call in result.tool_calls]
    return {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason(result.finish_reason), "stop_sequence": None, "usage": encode_usage(result.usage),
    }


def event(name: str, payload: dict[str, Any]) -> bytes:
    # The SDK dispatches on the event name, which must equal data.type.
    return f"event: {name}\ndata: ".encode() + json.dumps({"type": name, **payload}, separators=(",", ":")).encode() \
        + b"\n\n"


class StreamEncoder:
    """One Message as Anthropic's event sequence: message_start, a ping, content_block_start /
    delta / stop per block (thinking, text, tool_use, in the order the deltas come), then
    message_delta with the stop reason and the usage, and message_stop. Implements
    gateway.v1.chat.StreamEncoder."""

    def __init__(self, *, message_id: str, model: str, input_estimate: int):
        self.message_id = message_id
        self.model = model
        self.input_estimate = input_estimate
        self.blocks = 0  # blocks started so far
        self.open: str | None = None  # the type of the block open now
        self.tool_blocks: dict[int, int] = {}  # the IR's tool call index -> its block index
        self.stop_reason = "end_turn"

    def opening(self) -> bytes:
        message = {"id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": encode_usage(Usage(input_tokens=self.input_estimate))}
        return event("message_start", {"message": message}) + event("ping", {})

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return event("content_block_stop", {"index": self.blocks - 1})

    def _start(self, block: dict[str, Any]) -> bytes:
        out = self._close() + event("content_block_start", {"index": self.blocks, "content_block": block})
        self.blocks += 1
        self.open = block["type"]
        return out

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return event("content_block_delta", {"index": index, "delta": delta})

    def delta(self, delta: Delta) -> bytes:
        out = b""
        if delta.reasoning:
            if self.open != "thinking":
                out += self._start({"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta(self.blocks - 1, {"type": "thinking_delta", "thinking": delta.reasoning})
        if delta.reasoning_signature:
            if self.open != "thinking":
                out += self._start({"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta(self.blocks - 1, {"type": "signature_delta", "signature": delta.reasoning_signature})
        if delta.content:
            if self.open != "text":
                out += self._start({"type": "text", "text": ""})
            out += self._delta(self.blocks - 1, {"type": "text_delta", "text": delta.content})
        for url in delta.images or ():
            out += self._start(image_block(url)) + self._close()
        for call in delta.tool_calls or ():
            if call.index not in self.tool_blocks:
                self.tool_blocks[call.index] = self.blocks
                out += self._start({"type": "tool_use", "id": call.id or f"toolu_{self.message_id[4:]}_{call.index}",
                                    "name": call.name or "", "input": {}})
            if call.arguments:
                out += self._delta(self.tool_blocks[call.index],
                                   {"type": "input_json_delta", "partial_json": call.arguments})
        return out

    def finish(self, reason: str) -> bytes:
        self.stop_reason = stop_reason(reason)
        return self._close()

    def closing(self, usage: Usage) -> bytes:
        return self._close() + event("message_delta", {
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None}, "usage": encode_usage(usage)})

    def done(self) -> bytes:
        return event("message_stop", {})

    def failure(self, error: GatewayError) -> bytes:
        return event("error", {"error": {"type": error_type(error.status), "message": error.message}})
