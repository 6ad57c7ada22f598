"""Claude's thinking blocks carried through the canonical types and put back in a replay.

Every thinking block must go back unchanged, each with its own signature, and every
redacted_thinking block with its data; the IR has one reasoning_signature per answer. So the
signature is ours, opaque to everyone else: ``{"anthropic": [entry, ...]}``, each entry
``{"thinking", "signature"}`` or ``{"data"}`` with ``at`` (omitted when 0): how many of the blocks a
replay rebuilds (the text, once, then each tool_use) came before it. A whole answer makes one such
object; a stream makes one per block, ``{"anthropic": [entry]}``, as the block ends, so the
signature reaches the client inside the thinking block it belongs to (Delta.reasoning_signature).
Joined in order, the pieces are several objects in a row, read here as one list.

A replayed turn gets its blocks back one-to-one in those places. A signature that is not JSON is
read as the signature of one block holding the replayed reasoning (a client's own, from Anthropic);
JSON that is not ours (Gemini's ``{"gemini": ...}``, after a fallback) is ignored, as is reasoning
without a signature (Anthropic refuses unsigned thinking).
"""

import json
from typing import Any

from providers.types import Message

KEY = "anthropic"


class ThinkingBlocks:
    """An answer's thinking and redacted_thinking blocks, in order, each placed among the blocks a
    replay rebuilds; fed whole or, in a stream, piece by piece."""

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
        """The whole answer's signature; None when no block can go back."""
        return encode_entries(self.entries)


def encode_entries(entries: list[dict[str, Any]]) -> str | None:
    # Unsigned thinking cannot go back (Anthropic refuses it), so it is not carried.
    kept = [entry for entry in entries if entry.get("signature") or entry.get("data")]
    return json.dumps({KEY: kept}, separators=(",", ":")) if kept else None


def read_values(raw: str) -> list[Any] | None:
    """The JSON values of a signature, one or several in a row; None when it is not JSON."""
    decoder = json.JSONDecoder()
    values, at = [], 0
    while at < len(raw):
        if raw[at].isspace():
            at += 1
            continue
        try:
            value, at = decoder.raw_decode(raw, at)
        except ValueError:
            return None
        values.append(value)
    return values or None


def replayed_thinking(message: Message) -> list[tuple[int, dict[str, Any]]]:
    """The thinking blocks of a replayed assistant turn, each with its place (module docstring)."""
    raw = message.reasoning_signature
    if not raw:
        return []
    values = read_values(raw)
    if values is None or not all(isinstance(value, dict | list) for value in values):
        return [(0, {"type": "thinking", "thinking": message.reasoning or "", "signature": raw})]
    out = []
    for value in values:
        # JSON without our key is another provider's (Gemini's {"gemini": ...}), not ours to send.
        entries = value.get(KEY) if isinstance(value, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            block = replayed_block(entry)
            if block is not None:
                at = entry.get("at", 0)
                out.append((at if type(at) is int else 0, block))
    return out


def replayed_block(entry: Any) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("signature"), str) and isinstance(entry.get("thinking"), str):
        return {"type": "thinking", "thinking": entry["thinking"], "signature": entry["signature"]}
    if isinstance(entry.get("data"), str):
        return {"type": "redacted_thinking", "data": entry["data"]}
    return None
