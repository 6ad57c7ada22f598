"""Anthropic Messages as a client protocol: decode a request; errors in Anthropic's shape.

Tollgate is the server here (WIRE_FORMATS.md section 4), so the anthropic SDK works against any
model of the catalog; the canonical request (providers.types) is all the router sees.

In (Anthropic -> IR):
    system (string or text blocks)  -> one system message, blocks joined by a blank line
    messages with role system       -> a system message in its place (string or text blocks)
    user text / image blocks        -> text / image parts (base64 source -> data: URL; url source kept)
    user tool_result blocks         -> tool messages, before the user message of the rest of the turn
    assistant text / tool_use       -> content / tool_calls (input -> JSON arguments)
    assistant thinking blocks       -> reasoning (joined) and reasoning_signature (the signatures joined)
    max_tokens (required)           -> max_output_tokens
    stop_sequences / metadata.user_id -> stop / user
    tools (input_schema)            -> OpenAI-shaped function tools
    tool_choice auto|any|none|tool  -> "auto" | "required" | "none" | {"type": "function", ...}
    thinking / output_config.effort -> reasoning_effort (THINKING_EFFORTS, below), thinking_budget
    output_config.format            -> response_format json_schema
    context_management.edits        -> context_edits (and clear_thinking applied, below)
    anthropic-beta header           -> anthropic_betas (decode_betas; the view reads the header)
Out: gateway.v1.anthropic_answer (a Message, its event stream). Thinking, effort and
context_management: gateway.v1.anthropic_thinking.

Decisions:
- A system message in ``messages`` (Claude Code sends them mid-conversation) stays where it is;
  each adapter says how its API takes it. One with ``clear_at: "next_user_message"`` is dropped once
  a later user message exists, as Anthropic stops showing it then.
- anthropic-beta and ``?beta=true`` are bookkeeping: accepted; the Anthropic adapter forwards the
  betas that change what it sends, other providers ignore them.
- reasoning_signature is opaque: each thinking block's signature is whatever the provider's adapter
  made, and the client's replay of the blocks goes back unchanged, their signatures joined in order
  (a stream's come one per thinking block, gateway.v1.anthropic_answer).
  redacted_thinking blocks from a client are dropped: only a signature can carry them.
- tool_result ``is_error`` has no field in the IR: the result's text is prefixed with "Error: ".
- Accepted and not forwarded, changing no answer: cache_control (top level, on blocks and tools),
  service_tier, citations on text blocks, tool_choice.disable_parallel_tool_use.
- Refused (400 naming them): unknown fields, top_k (the IR has none), server tools, document
  and other block types, images in system prompts.
"""

import json
from typing import Any

from gateway.v1.anthropic_thinking import (
    clear_thinking,
    decode_context_management,
    decode_output_config,
    decode_thinking,
)
from gateway.v1.errors import GatewayError, bad_request
from gateway.v1.json_body import decoder
from gateway.v1.openai_chat import expect, number_in, positive_int
from providers.types import ChatRequest, ContentPart, ImagePart, Message, TextPart, ToolCall

SUPPORTED = {
    "model", "messages", "max_tokens", "system", "stream", "temperature", "top_p", "stop_sequences", "tools",
    "tool_choice", "thinking", "metadata", "output_config", "context_management",
}
IGNORED = {"service_tier", "cache_control"}
# POST /v1/messages/count_tokens takes the prompt only: no max_tokens, no sampling settings.
COUNT_SUPPORTED = {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config",
                   "context_management"}
COUNT_MAX_TOKENS = 1 << 30  # stands in for the max_tokens a count has none of (thinking budgets stay below it)
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
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
    context_edits = decode_context_management(payload.get("context_management"))
    clear_thinking(messages, context_edits)
    response_format, effort = decode_output_config(payload.get("output_config"))
    effort, budget = decode_thinking(payload.get("thinking"), max_tokens, effort)
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        max_output_tokens=max_tokens,
        output_is_ceiling=True,
        temperature=number_in(payload, "temperature", 0, 1),
        top_p=number_in(payload, "top_p", 0, 1),
        stop=stop,
        tools=tools,
        tool_choice=decode_tool_choice(payload.get("tool_choice"), tools),
        response_format=response_format,
        reasoning_effort=effort,
        thinking_budget=budget,
        user=decode_user(payload.get("metadata")),
        context_edits=context_edits,
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


def decode_system(value: Any, where: str = "system") -> list[Message]:
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        return [Message(role="system", content=value)]
    expect(value, list, where, "a string or a list of text blocks")
    texts = []
    for index, block in enumerate(value):
        at = f"{where}.{index}"
        expect(block, dict, at, "a text block")
        if block.get("type") != "text":
            raise bad_request(f"{at}.type: system blocks must be text blocks.", param=f"{at}.type")
        texts.append(expect(block.get("text"), str, f"{at}.text", "a string"))
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
        if role not in ("user", "assistant", "system"):
            raise bad_request(f"{where}.role: must be 'user', 'assistant' or 'system', not {json.dumps(role)}.",
                              param=f"{where}.role")
        if role == "system":
            messages += decode_system_message(raw, where, later=value[index + 1:])
            continue
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


def decode_system_message(raw: dict, where: str, *, later: list) -> list[Message]:
    """A system message in the conversation, kept in its place (module docstring)."""
    extra = sorted(set(raw) - {"role", "content", "clear_at"})
    if extra:
        raise bad_request(f"{where}.{extra[0]}: Extra inputs are not permitted.", param=f"{where}.{extra[0]}")
    clear_at = raw.get("clear_at")
    if clear_at not in (None, "never", "next_user_message"):
        raise bad_request(f"{where}.clear_at: must be 'next_user_message' or 'never'.", param=f"{where}.clear_at")
    if raw.get("content") is None or raw.get("content") == []:
        raise bad_request(f"{where}.content: must not be empty.", param=f"{where}.content")
    message = decode_system(raw["content"], where=f"{where}.content")
    if clear_at == "next_user_message" and any(isinstance(m, dict) and m.get("role") == "user" for m in later):
        return []
    return message


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
    signatures: list[str] = []
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
            signatures.append(expect(block.get("signature", ""), str, f"{at}.signature", "a string"))
    return Message(role="assistant", content="".join(texts) if texts or not calls else None, tool_calls=calls,
                   reasoning="".join(thoughts) or None, reasoning_signature="".join(signatures) or None)


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


def decode_betas(header: str | None) -> list[str]:
    """The anthropic-beta header's flags (comma-separated, as the SDK sends them)."""
    return [beta.strip() for beta in (header or "").split(",") if beta.strip()]


def decode_user(value: Any) -> str | None:
    if value is None:
        return None
    expect(value, dict, "metadata", "an object")
    extra = sorted(set(value) - {"user_id"})
    if extra:
        raise bad_request(f"metadata.{extra[0]}: Extra inputs are not permitted.", param=f"metadata.{extra[0]}")
    user = value.get("user_id")
    return expect(user, str, "metadata.user_id", "a string") if user is not None else None
