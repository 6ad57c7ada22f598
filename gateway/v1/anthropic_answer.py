"""An answer in Anthropic's Messages shape: the Message (encode_message) and its event stream
(StreamEncoder), from the canonical result and events (providers.types).

Decisions:
- Thinking: the reasoning goes first, as a thinking block with its signature (the whole answer's,
  whatever the provider's adapter made). In a stream, a signature piece arriving while a thinking
  block is open is that block's signature_delta, just before its content_block_stop, as Anthropic
  sends it (Claude's adapter sends each block's piece as the block ends). A piece arriving before
  the answer began with no thinking block open (Anthropic's redacted_thinking, which the
  signature carries) gets a thinking block of its own, with no thinking text, in its place. One
  arriving after the answer began, with no thinking block open (Gemini signs the whole answer at
  its end), waits for the next block; at the end of the answer it is dropped: the stream has no
  place for it after the answer, and a block there would be taken for the answer (Claude Code
  prints the last block). Such a replayed turn goes back unsigned (Gemini 3 then gets Google's
  documented bypass for its calls); the non-streamed answer carries it.
- A stream's message_start carries the gateway's input estimate (the provider reports the real
  count at the end); message_delta carries the exact usage, which the SDK's message takes.
- Generated images (Gemini image models) become image blocks with a base64 source, as requests
  send them; citations (search-grounded models) have no Anthropic shape here and are not sent.
"""

import json
from typing import Any

from gateway.v1.anthropic_messages import error_type
from gateway.v1.errors import GatewayError
from providers.types import ChatResult, Delta, Usage

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
THINKING_SHELL = {"type": "thinking", "thinking": "", "signature": ""}


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
        self.open: str | None = None  # the type of the block open now (a thinking block is unsigned)
        self.answering = False  # a text, image or tool_use block has started
        self.held = ""  # a signature with no thinking block to go in yet (module docstring)
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
        self.answering = self.answering or block["type"] != "thinking"
        return out

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return event("content_block_delta", {"index": index, "delta": delta})

    def _signature(self, signature: str) -> bytes:
        """The signature_delta of the open thinking block, which it ends, or a block of its own."""
        if self.open != "thinking" and self.answering:
            self.held += signature
            return b""
        out = b"" if self.open == "thinking" else self._start(dict(THINKING_SHELL))
        return out + self._delta(self.blocks - 1, {"type": "signature_delta", "signature": signature}) + self._close()

    def _place_held(self) -> bytes:
        held, self.held = self.held, ""
        if not held:
            return b""
        return self._close() + self._start(dict(THINKING_SHELL)) + self._delta(
            self.blocks - 1, {"type": "signature_delta", "signature": held}) + self._close()

    def delta(self, delta: Delta) -> bytes:
        out = b""
        if delta.reasoning or delta.content or delta.images or delta.tool_calls:
            out += self._place_held()
        if delta.reasoning:
            if self.open != "thinking":
                out += self._start(dict(THINKING_SHELL))
            out += self._delta(self.blocks - 1, {"type": "thinking_delta", "thinking": delta.reasoning})
        if delta.reasoning_signature:
            out += self._signature(delta.reasoning_signature)
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
        self.held = ""  # after the answer: no place for it (module docstring)
        return self._close()

    def closing(self, usage: Usage) -> bytes:
        return self._close() + event("message_delta", {
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None}, "usage": encode_usage(usage)})

    def done(self) -> bytes:
        return event("message_stop", {})

    def failure(self, error: GatewayError) -> bytes:
        return event("error", {"error": {"type": error_type(error.status), "message": error.message}})
