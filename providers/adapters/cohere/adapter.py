"""Cohere v2 chat: ``POST {base_url}/v2/chat`` with ``Authorization: Bearer <key>``. Embed and
rerank (/v2/embed, /v2/rerank) are in cohere/embed.py.

Request, IR -> Cohere v2 (WIRE_FORMATS 8a; field shapes from cohere-python's v2 types):
    system, developer    {"role": "system", "content": str}  (Cohere has no developer role)
    user                 content as a string, or blocks {"type": "text"} / {"type": "image_url",
                         "image_url": {"url", "detail"}} (data: and https URLs, Command A Vision)
    assistant            content as a string; tool_calls as v2 {id, type: function, function{name,
                         arguments}}; replayed reasoning -> ``tool_plan`` on a turn with tool calls
                         (where Cohere put it), else a leading {"type": "thinking"} content block
    tool                 {"role": "tool", "tool_call_id", "content": str or text blocks}
    max_output_tokens    max_tokens            stop -> stop_sequences      seed -> seed
    temperature          temperature, unchanged (Cohere checks its own range and answers a 400)
    top_p                p, clamped into Cohere's 0.01..0.99 (1.0, "no cut", becomes 0.99)
    tools                the same function-tool shape; ``parameters`` defaults to an empty object
                         schema (Cohere requires it); ``strict`` on any tool -> ``strict_tools``
    tool_choice          "required" -> "REQUIRED", "none" -> "NONE", "auto" -> omitted (Cohere's
                         default), sent only with tools; a named function -> UnsupportedFeature
                         (v2 cannot force one function)
    response_format      json_schema -> {"type": "json_object", "json_schema": <the schema>} (the
                         schema's name and OpenAI's strict flag have no field in v2's
                         response_format); json_object -> {"type": "json_object"}; text -> omitted
    reasoning_effort     "none" -> thinking {"type": "disabled"}; minimal/low/medium ->
                         {"type": "enabled", "token_budget": 1024/2048/8192}; high and above ->
                         {"type": "enabled"} (no budget: the model's own limit). The budgets are
                         our choice; Cohere has no effort levels, only a token budget
    user, message name   not sent: v2 has no field for either
    frequency_penalty, presence_penalty   the same names; other arguments of providers.arguments
                         are refused before the call (SUPPORTED_ARGUMENTS)
Images anywhere but a user message are refused (UnsupportedFeature), never dropped.

Response, Cohere -> IR:
    message.content[]    "text" blocks -> content; "thinking" blocks -> reasoning
    message.tool_plan    reasoning too (after any thinking): it is the model's own plan, not answer
    message.tool_calls   tool_calls
    finish_reason        COMPLETE, STOP_SEQUENCE -> stop; MAX_TOKENS -> length; TOOL_CALL ->
                         tool_calls; ERROR -> ProviderUnavailable; TIMEOUT -> ProviderTimeout
                         (retryable when nothing was produced yet; in a stream after output,
                         ProviderStreamBroken)
    usage                Usage from ``billed_units`` (what Cohere charges for: it leaves out the
                         tokens of its own preamble and tool scaffolding that ``tokens`` counts),
                         ``tokens`` only when no billed units came. Cohere's ``cached_tokens`` is
                         not passed on: it counts against ``tokens``, not the billed units, and
                         Cohere bills billed input at one price, so reporting it would under-bill.
    citations            not read: they point into ``documents``, which the gateway never sends.

Stream (SSE; ``data.type`` discriminates, ``event:`` lines are optional and ignored):
message-start, content-start/-delta/-end (``text`` -> Delta.content, ``thinking`` ->
Delta.reasoning), tool-plan-delta -> Delta.reasoning, tool-call-start/-delta/-end -> ToolCallDelta
(Cohere's index mapped to 0, 1, ... in order of first appearance), citation-* and debug ignored,
message-end -> Finish, then UsageReport. ``data: [DONE]`` is tolerated; a stream that ends (or says
[DONE]) before message-end raises ProviderStreamBroken. Thinking followed by a tool plan is joined
with a blank line, streamed as in a non-streamed answer.

Errors (body ``{"message": str}``): 429 -> ProviderRateLimited (Retry-After honoured); 5xx and
499 -> ProviderUnavailable; 401, 403, 498 (the SDK's InvalidTokenError) and 402 (billing limit: the
operator's account, not the client) -> ProviderAuthFailed, with the key redacted; 404 ->
ProviderNotFound; a 400 "too many tokens" about the prompt -> ContextWindowExceeded; any other 4xx
-> ProviderBadRequest keeping Cohere's message. An answer without a message, or a stream event that
is not a JSON object -> ProviderMalformed (answers.malformed); usage that is not a number is billed
by estimate.
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
from providers.adapters.base import Adapter
from providers.adapters.cohere import embed as cohere_embed
from providers.adapters.http_calls import (
    error_for_status,
    fetch_json,
    parse_retry_after,
    redacted_message,
    relay_stream,
    timeout_for,
)
from providers.embedding_types import EmbeddingRequest, EmbeddingResult, RerankRequest, RerankResult
from providers.types import (
    ChatRequest,
    ChatResult,
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

FINISH_REASONS = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}
FAILED_FINISHES = {"ERROR", "TIMEOUT"}
TOOL_CHOICES = {"required": "REQUIRED", "none": "NONE"}
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192}
P_RANGE = (0.01, 0.99)


class CohereAdapter(Adapter):
    OPERATIONS = frozenset({"complete", "stream"})

    wire_format = "cohere"
    # v2 also has ``logprobs``, but answers them in its own shape (token ids, not OpenAI's): not taken.
    SUPPORTED_ARGUMENTS = frozenset({"frequency_penalty", "presence_penalty"})

    async def complete(self, request: ChatRequest, target: Target) -> ChatResult:
        payload = await fetch_json(build_request(request, target, stream=False), target, error_from_response)
        return parse_completion(payload, target)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        events = relay_stream(build_request(request, target, stream=True), target, error_from_response,
                              StreamReader(target), end="message-end")
        async with aclosing(events):
            async for event in events:
                yield event

    def can_embed(self, target: Target) -> bool:
        return True

    async def embed(self, request: EmbeddingRequest, target: Target) -> EmbeddingResult:
        return await cohere_embed.embed(request, target, error_from_response)

    def can_rerank(self, target: Target) -> bool:
        return True

    async def rerank(self, request: RerankRequest, target: Target) -> RerankResult:
        return await cohere_embed.rerank(request, target, error_from_response)


# --- request ----------------------------------------------------------------------------------

@lru_cache(maxsize=256)
def chat_url(base_url: str) -> httpx.URL:
    return httpx.URL(base_url.rstrip("/") + "/v2/chat")


def build_request(request: ChatRequest, target: Target, *, stream: bool) -> httpx.Request:
    headers = {"Authorization": f"Bearer {target.api_key}", "Content-Type": "application/json",
               "Accept": "text/event-stream" if stream else "application/json"}
    return httpx.Request(
        "POST", chat_url(target.base_url), headers=headers,
        content=json.dumps(build_body(request, target, stream=stream)).encode(),
        extensions={"timeout": timeout_for(target).as_dict()},
    )


def unsupported(target: Target, what: str) -> errors.UnsupportedFeature:
    return errors.UnsupportedFeature(f"Cohere ({target.provider}) does not support {what}.",
                                     provider=target.provider)


def encode_parts(message: Message, target: Target, *, images: bool) -> str | list[dict[str, Any]]:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    blocks: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            if not images:
                raise unsupported(target, f"images in {message.role} messages (only user messages take images)")
            blocks.append({"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}})
        else:
            blocks.append({"type": "text", "text": part.text})
    return blocks


def encode_message(message: Message, target: Target) -> dict[str, Any]:
    if message.role in ("system", "developer"):
        return {"role": "system", "content": encode_parts(message, target, images=False)}
    if message.role == "user":
        return {"role": "user", "content": encode_parts(message, target, images=True)}
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "",
                "content": encode_parts(message, target, images=False)}
    encoded: dict[str, Any] = {"role": "assistant"}
    text = encode_parts(message, target, images=False)
    if message.tool_calls:
        encoded["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
        if message.reasoning:
            encoded["tool_plan"] = message.reasoning
        if text:
            encoded["content"] = text
    elif message.reasoning:
        blocks = text if isinstance(text, list) else [{"type": "text", "text": text}] if text else []
        encoded["content"] = [{"type": "thinking", "thinking": message.reasoning}, *blocks]
    else:
        encoded["content"] = text
    return encoded


def encode_tools(tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    encoded, strict = [], False
    for tool in tools:
        function = tool["function"]
        strict = strict or bool(function.get("strict"))
        spec = {"name": function["name"],
                "parameters": function.get("parameters") or {"type": "object", "properties": {}}}
        if function.get("description"):
            spec["description"] = function["description"]
        encoded.append({"type": "function", "function": spec})
    return encoded, strict


def encode_tool_choice(choice: str | dict[str, Any] | None, target: Target) -> str | None:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name", "?")
        raise unsupported(target, f"forcing a named function (tool_choice {{'function': {{'name': '{name}'}}}}); "
                                  "send tool_choice 'required' with only that tool instead")
    return TOOL_CHOICES.get(choice or "auto")


def encode_response_format(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    kind = (response_format or {}).get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return {"type": "json_object", **({"json_schema": schema} if schema else {})}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def encode_thinking(effort: str | None) -> dict[str, Any] | None:
    if effort is None:
        return None
    if effort == "none":
        return {"type": "disabled"}
    budget = THINKING_BUDGETS.get(effort)
    return {"type": "enabled", **({"token_budget": budget} if budget else {})}


def build_body(request: ChatRequest, target: Target, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": target.upstream_model,
        "messages": [encode_message(message, target) for message in request.messages],
        "stream": stream,
    }
    if request.tools:
        body["tools"], strict = encode_tools(request.tools)
        if strict:
            body["strict_tools"] = True
        choice = encode_tool_choice(request.tool_choice, target)
        if choice:
            body["tool_choice"] = choice
    elif isinstance(request.tool_choice, dict):
        encode_tool_choice(request.tool_choice, target)  # refuse it the same way without tools
    p = None if request.top_p is None else min(max(request.top_p, P_RANGE[0]), P_RANGE[1])
    optional = {
        "max_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "p": p,
        "stop_sequences": request.stop or None,
        "seed": request.seed,
        "frequency_penalty": request.frequency_penalty,
        "presence_penalty": request.presence_penalty,
        "response_format": encode_response_format(request.response_format),
        "thinking": encode_thinking(request.reasoning_effort),
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


# --- response ---------------------------------------------------------------------------------

@usage_reader
def parse_usage(raw: dict[str, Any] | None) -> Usage | None:
    if not raw:
        return None
    billed, tokens = raw.get("billed_units") or {}, raw.get("tokens") or {}
    source = billed if billed.get("input_tokens") is not None or billed.get("output_tokens") is not None else tokens
    return Usage(input_tokens=token_count(source.get("input_tokens")),
                 output_tokens=token_count(source.get("output_tokens")))


def failed_generation(finish_reason: str, detail: str | None, target: Target, *,
                      produced: bool) -> errors.ProviderError:
    if detail and target.api_key:
        detail = detail.replace(target.api_key, "[redacted]")
    text = f"{target.provider} stopped generating ({finish_reason}): {detail or 'no detail given'}"
    if produced:
        return errors.ProviderStreamBroken(text, provider=target.provider)
    if finish_reason == "TIMEOUT":
        return errors.ProviderTimeout(text, provider=target.provider)
    return errors.ProviderUnavailable(text, provider=target.provider)


def join_reasoning(*pieces: str | None) -> str | None:
    return "\n\n".join(piece for piece in pieces if piece) or None


def parse_completion(payload: dict[str, Any], target: Target) -> ChatResult:
    message = payload.get("message")
    if not isinstance(message, dict):
        raise malformed("an answer without a message", target)
    finish_reason = payload.get("finish_reason") or "COMPLETE"
    if finish_reason in FAILED_FINISHES:
        raise failed_generation(finish_reason, None, target, produced=False)
    blocks = message.get("content") or []
    text = "".join(block.get("text") or "" for block in blocks if block.get("type") == "text")
    thinking = "".join(block.get("thinking") or "" for block in blocks if block.get("type") == "thinking")
    tool_calls = [
        ToolCall(id=call.get("id", ""), name=(call.get("function") or {}).get("name", ""),
                 arguments=(call.get("function") or {}).get("arguments") or "{}")
        for call in message.get("tool_calls") or ()
    ]
    return ChatResult(
        id=payload.get("id") or f"chatcmpl-{uuid.uuid4().hex}",
        content=text or (None if tool_calls else ""),
        reasoning=join_reasoning(thinking, message.get("tool_plan")),
        tool_calls=tool_calls,
        finish_reason=FINISH_REASONS.get(finish_reason, "stop"),
        usage=parse_usage(payload.get("usage")) or Usage(),
        upstream_model=target.upstream_model,
    )


class StreamReader:
    """Turns Cohere's stream events into IR events, one event at a time."""

    def __init__(self, target: Target):
        self.target = target
        self.ended = False
        self.produced = False
        self.tool_positions: dict[int, int] = {}
        self.reasoning_seen = ""  # "thinking" or "tool_plan": the kind of reasoning sent last

    def read(self, name: str, event: dict[str, Any]) -> list[StreamEvent]:
        kind = event.get("type")  # the ``event:`` line (``name``) is optional on Cohere's side
        message = (event.get("delta") or {}).get("message") or {}
        out: list[StreamEvent] = []
        if kind in ("content-start", "content-delta"):
            content = message.get("content") or {}
            if content.get("text") or content.get("thinking"):
                out.append(Delta(content=content.get("text") or None, reasoning=content.get("thinking") or None))
                if content.get("thinking"):
                    self.reasoning_seen = "thinking"
        elif kind == "tool-plan-delta" and message.get("tool_plan"):
            # Thinking, then the plan: the same blank line between them as a non-streamed answer has.
            separator = "\n\n" if self.reasoning_seen == "thinking" else ""
            self.reasoning_seen = "tool_plan"
            out.append(Delta(reasoning=separator + message["tool_plan"]))
        elif kind in ("tool-call-start", "tool-call-delta"):
            out.append(Delta(tool_calls=[self.tool_call(event.get("index") or 0, message.get("tool_calls") or {})]))
        elif kind == "message-end":
            out.extend(self.end(event.get("delta") or {}))
        self.produced = self.produced or bool(out)
        return out

    def tool_call(self, index: int, raw: dict[str, Any]) -> ToolCallDelta:
        position = self.tool_positions.setdefault(index, len(self.tool_positions))
        function = raw.get("function") or {}
        return ToolCallDelta(index=position, id=raw.get("id"), name=function.get("name"),
                             arguments=function.get("arguments") or "")

    def end(self, delta: dict[str, Any]) -> list[StreamEvent]:
        finish_reason = delta.get("finish_reason") or "COMPLETE"
        if delta.get("error") or finish_reason in FAILED_FINISHES:
            raise failed_generation(finish_reason, delta.get("error"), self.target, produced=self.produced)
        self.ended = True
        usage = parse_usage(delta.get("usage"))
        finish: list[StreamEvent] = [Finish(FINISH_REASONS.get(finish_reason, "stop"))]
        return finish + [UsageReport(usage)] if usage is not None else finish


# --- errors -----------------------------------------------------------------------------------

def message_of(payload: Any) -> str:
    return str(payload.get("message") or "") if isinstance(payload, dict) else ""


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    message = redacted_message(body, target, message_of)
    kwargs = {"provider": target.provider, "upstream_status": status}
    if status == 499:  # the SDK's ClientClosedRequestError: the request was cancelled on Cohere's side
        error: errors.ProviderError = errors.ProviderUnavailable(f"{target.provider} returned {status}: {message}",
                                                                 **kwargs)
    else:
        error = error_for_status(status, headers, message, target,
                                 auth_hint="the operator must check its key or account.",
                                 auth_statuses=(401, 402, 403, 498))  # 498: the SDK's InvalidTokenError
    lowered = message.lower()
    if (type(error) is errors.ProviderBadRequest and lowered.startswith("too many tokens")
            and ("prompt" in lowered or "size limit" in lowered)):
        error = errors.ContextWindowExceeded(error.message, **kwargs)
    error.retry_after = parse_retry_after(headers)
    return error
