"""OpenAI Chat Completions answers -> IR, whole (parse_completion) or as stream chunks (read_chunk,
parse_delta, with_logprobs), for OpenAI and the compatible family (openai_compatible).

Read from any provider: reasoning from ``reasoning_content`` (DeepSeek, xAI, Qwen) or
``reasoning`` (Groq), thinking blocks in a content array (Mistral magistral), usage from any
chunk (Groq's ``x_groq.usage``, DeepSeek's cache hits), Perplexity's top-level ``citations``.
With the ``think_tags`` quirk, ``<think>...</think>`` in the content is split out into reasoning.
Finish reasons other providers spell differently map to OpenAI's (FINISH_SYNONYMS).
"""

import uuid
from typing import Any

from providers import json_wire
from providers.adapters.answers import malformed, token_count, usage_reader
from providers.adapters.openai.reasoning import ThinkTagSplitter, split_content
from providers.types import ChatResult, Delta, Target, ToolCall, ToolCallDelta, Usage


@usage_reader
def parse_usage(payload: dict[str, Any]) -> Usage | None:
    raw = payload.get("usage") or (payload.get("x_groq") or {}).get("usage")
    if not raw:
        return None
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    cached = prompt_details.get("cached_tokens") or raw.get("prompt_cache_hit_tokens")
    return Usage(
        input_tokens=token_count(raw.get("prompt_tokens")),
        output_tokens=token_count(raw.get("completion_tokens")),
        reasoning_tokens=token_count(completion_details.get("reasoning_tokens")),
        cached_tokens=token_count(cached),
    )


def read_chunk(data: str, target: Target, *, produced: bool) -> dict[str, Any]:
    """One stream event: a chunk object with its ``choices`` list (the last may be empty), or an error."""
    try:
        chunk = json_wire.loads(data)
    except ValueError:
        chunk = None
    if not isinstance(chunk, dict) or not (chunk.get("error") or isinstance(chunk.get("choices"), list)):
        raise malformed("a stream event that is not a chat.completion.chunk object", target, produced=produced)
    return chunk


def parse_completion(payload: dict[str, Any], target: Target) -> ChatResult:
    try:
        choice = payload["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise malformed("an answer without a choice", target) from exc
    tool_calls = [
        ToolCall(id=call.get("id", ""), name=call["function"]["name"], arguments=call["function"].get("arguments", ""))
        for call in message.get("tool_calls") or ()
    ]
    content, thinking = split_content(message.get("content"))
    if content and target.quirks.get("think_tags"):
        splitter = ThinkTagSplitter()
        content, tagged = splitter.feed(content)
        thinking = (thinking or "") + tagged or None
    reasoning = message.get("reasoning_content") or message.get("reasoning") or thinking
    return ChatResult(
        id=payload.get("id") or f"chatcmpl-{uuid.uuid4().hex}",
        content=content,
        reasoning=reasoning or None,
        tool_calls=tool_calls,
        finish_reason=finish_reason(choice.get("finish_reason")),
        usage=parse_usage(payload) or Usage(),
        citations=[str(url) for url in payload.get("citations") or ()],
        logprobs=parse_logprobs(choice),
        upstream_model=payload.get("model") or target.upstream_model,
    )


def parse_logprobs(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A choice's token logprobs (``logprobs.content``), passed on as the provider shaped them."""
    raw = choice.get("logprobs")
    content = raw.get("content") if isinstance(raw, dict) else None
    return [entry for entry in content if isinstance(entry, dict)] or None if isinstance(content, list) else None


def with_logprobs(delta: Delta | None, choice: dict[str, Any]) -> Delta | None:
    """A stream chunk's delta with the logprobs of its tokens (they sit beside the delta, on the choice)."""
    logprobs = parse_logprobs(choice)
    if logprobs is None:
        return delta
    if delta is None:
        return Delta(logprobs=logprobs)
    delta.logprobs = logprobs
    return delta


FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter", "function_call"}
# What compatible providers say instead (Mistral "model_length", others "eos", "max_tokens", ...).
FINISH_SYNONYMS = {"eos": "stop", "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                   "model_length": "length", "tool_call": "tool_calls", "tool_use": "tool_calls",
                   "safety": "content_filter", "sensitive": "content_filter"}


def finish_reason(value: str | None) -> str:
    if not value:
        return "stop"
    reason = str(value).lower()
    return reason if reason in FINISH_REASONS else FINISH_SYNONYMS.get(reason, "stop")


def parse_delta(raw: dict[str, Any], splitter: ThinkTagSplitter | None = None) -> Delta | None:
    content, thinking = split_content(raw.get("content"))
    if content and splitter is not None:
        content, tagged = splitter.feed(content)
        thinking = (thinking or "") + tagged
    reasoning = raw.get("reasoning_content") or raw.get("reasoning") or thinking
    tool_calls = [
        ToolCallDelta(
            index=call.get("index", 0),
            id=call.get("id"),
            name=(call.get("function") or {}).get("name"),
            arguments=(call.get("function") or {}).get("arguments") or "",
        )
        for call in raw.get("tool_calls") or ()
    ]
    if not content and not reasoning and not tool_calls:
        return None
    return Delta(content=content or None, reasoning=reasoning or None, tool_calls=tool_calls or None)
