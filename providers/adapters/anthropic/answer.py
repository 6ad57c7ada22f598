"""Anthropic -> IR: a Message (parse_message) and the stream's events (StreamTranslator).

Text blocks -> content; thinking -> reasoning (joined) and, with redacted_thinking, the
reasoning_signature of anthropic_thinking; tool_use -> tool_calls (arguments = the input as JSON
text); stop_reason -> FINISH_REASONS; usage -> Usage, where input_tokens = input + cache reads +
cache writes (Anthropic reports the three apart).

Streams: a thinking block's signature piece is sent when the block stops (Anthropic's
signature_delta comes just before), a redacted_thinking block's likewise, so each reaches the
client before the blocks after it. Tool-call deltas are indexed by the n-th tool_use block
(0-based), not Anthropic's block index; a tool_use whose input streamed no fragment gets "{}" at
its block stop. An ``event: error`` after output began -> ProviderStreamBroken; before it, mapped
like the HTTP errors. An answer without its content list, or a stream event without the index or
object it requires -> ProviderMalformed (answers.malformed).
"""

import json
import uuid
from typing import Any

from providers.adapters.answers import malformed, token_count, usage_reader
from providers.adapters.anthropic.errors import stream_error
from providers.adapters.anthropic.thinking import ThinkingBlocks, encode_entries
from providers.types import ChatResult, Delta, StreamEvent, Target, ToolCall, ToolCallDelta, Usage

FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter",
}
# The object a stream event must carry to be read (every content_block_* event also its index).
REQUIRED_OBJECTS = {"message_start": "message", "content_block_start": "content_block", "content_block_delta": "delta"}


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


class StreamTranslator:
    """Anthropic stream events in, IR events out; keeps what spans events (usage, tool indexes,
    the thinking blocks open now)."""

    def __init__(self, target: Target):
        self.target = target
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> n-th tool_use block
        self.tools_with_arguments: set[int] = set()
        self.thinking = ThinkingBlocks()
        self.thinking_index: dict[int, dict[str, Any]] = {}  # Anthropic block index -> its entry, until it stops
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
            return self.block_stop(data.get("index"))
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
            entry = self.thinking.add(data=block.get("data") or "")
            if index is not None:
                self.thinking_index[index] = entry
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
            entry["signature"] += delta.get("signature") or ""  # sent once, just before the block stops
            return []
        position = self.tool_index.get(index)
        if kind == "input_json_delta" and position is not None and delta.get("partial_json"):
            self.tools_with_arguments.add(position)
            return [Delta(tool_calls=[ToolCallDelta(index=position, arguments=delta["partial_json"])])]
        return []

    def block_stop(self, index: int | None) -> list[StreamEvent]:
        entry = self.thinking_index.pop(index, None)
        if entry is not None:
            piece = encode_entries([entry])
            return [Delta(reasoning_signature=piece)] if piece else []
        position = self.tool_index.get(index)
        if position is not None and position not in self.tools_with_arguments:
            return [Delta(tool_calls=[ToolCallDelta(index=position, arguments="{}")])]
        return []

    def merge_usage(self, raw: dict[str, Any] | None) -> None:
        # message_delta's counts are cumulative: the latest value of each field wins.
        self.usage.update({key: value for key, value in (raw or {}).items() if value is not None})
