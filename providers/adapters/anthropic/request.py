"""IR -> Anthropic: the Messages request (mapping and decisions in providers.adapters.anthropic.adapter).

Conversation: system / developer messages before the conversation -> the top-level ``system``;
one later in the conversation (the Messages API has no system role in ``messages``) -> a text
block ``<system>...</system>`` in a user turn at its place, which keeps its position and leaves the
top-level system, the start of Anthropic's prompt cache, unchanged from turn to turn. Consecutive
same-role turns merge, tool_result blocks first (Anthropic's order).
"""

import json
from functools import lru_cache
from typing import Any

import httpx

from providers import errors
from providers.adapters.anthropic.thinking import replayed_thinking
from providers.adapters.http_calls import post_json
from providers.http import Prepared
from providers.types import (
    MIN_THINKING_BUDGET,
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    Target,
    ToolCall,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192
ANSWER_ROOM = 4096
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 27904}
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
TOOL_CHOICES = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
SYSTEM_NOTE = "<system>\n{}\n</system>"
# The anthropic-beta flags a client may ask for that are forwarded: they change how Anthropic treats
# the request the gateway sends. Others are not (server tools, files, 1M context at its own prices).
CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"
FORWARDED_BETAS = frozenset({"interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14",
                             CONTEXT_MANAGEMENT_BETA})


@lru_cache(maxsize=256)
def messages_url(base_url: str) -> httpx.URL:
    # The catalog's base URL has no /v1 (as the Anthropic SDK's); an operator's may.
    base = base_url.rstrip("/")
    return httpx.URL(base + ("/messages" if base.endswith("/v1") else "/v1/messages"))


def build_request(request: ChatRequest, target: Target, *, stream: bool) -> Prepared:
    headers = {
        "x-api-key": target.api_key,
        "anthropic-version": API_VERSION,
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    betas = forwarded_betas(request)
    if betas:
        headers["anthropic-beta"] = ",".join(betas)
    return post_json(messages_url(target.base_url), headers, build_body(request, target, stream=stream), target)


def forwarded_betas(request: ChatRequest) -> list[str]:
    betas = [beta for beta in request.anthropic_betas if beta in FORWARDED_BETAS]
    if request.context_edits:
        betas.append(CONTEXT_MANAGEMENT_BETA)
    return list(dict.fromkeys(betas))


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
    if request.context_edits:
        body["context_management"] = {"edits": request.context_edits}
    return body


def output_limits(request: ChatRequest, target: Target) -> tuple[int, dict[str, Any] | None]:
    """max_tokens and the thinking setting (providers.adapters.anthropic.adapter's docstring: "Thinking")."""
    default = int(target.quirks.get("default_max_tokens", DEFAULT_MAX_TOKENS))
    if request.thinking_budget is not None and request.is_reasoning():
        # The client's own budget goes as given: its decoder checked it is under its max_tokens.
        max_tokens = request.output_limit() or max(default, request.thinking_budget + ANSWER_ROOM)
        return max_tokens, {"type": "enabled", "budget_tokens": min(request.thinking_budget, max_tokens - 1)}
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
            if not message.text():
                continue
            if turns:  # in the conversation: kept in its place (module docstring)
                add_turn(turns, "user", [{"type": "text", "text": SYSTEM_NOTE.format(message.text())}])
            else:
                system.append({"type": "text", "text": message.text()})
            continue
        blocks = encode_message_blocks(message, target)
        if blocks:
            add_turn(turns, "assistant" if message.role == "assistant" else "user", blocks)
    return system, turns


def add_turn(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not turns or turns[-1]["role"] != role:
        turns.append({"role": role, "content": blocks})
        return
    # Tool results of one turn share one user message, ahead of any text (Anthropic refuses them after).
    merged = turns[-1]["content"] + blocks
    turns[-1]["content"] = ([block for block in merged if block["type"] == "tool_result"]
                            + [block for block in merged if block["type"] != "tool_result"])


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
