"""Reasoning that compatible providers send inside the content of a Chat Completions answer:
Mistral magistral's ``thinking`` parts in a content array, and MiniMax M2's ``<think>...</think>``
tags in the text (the ``think_tags`` quirk), which a stream may cut anywhere."""

from typing import Any


def split_content(content: Any) -> tuple[str | None, str | None]:
    """Text and thinking of a message content: a string, or (Mistral magistral) a list of
    ``text`` and ``thinking`` parts, a thinking part holding text parts of its own."""
    if not isinstance(content, list):
        return content, None
    text, thinking = [], []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            text.append(part.get("text") or "")
        elif part.get("type") == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, list):
                thinking.extend(item.get("text") or "" for item in inner if isinstance(item, dict))
            elif isinstance(inner, str):
                thinking.append(inner)
    return "".join(text) or None, "".join(thinking) or None


class ThinkTagSplitter:
    """Splits ``<think>...</think>`` out of text that may arrive in arbitrary pieces."""

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self.thinking = False
        self.pending = ""  # a possible tag cut between two pieces

    def feed(self, piece: str) -> tuple[str, str]:
        text, reasoning = [], []
        buffer = self.pending + piece
        self.pending = ""
        while buffer:
            tag = self.CLOSE if self.thinking else self.OPEN
            at = buffer.find(tag)
            if at >= 0:
                (reasoning if self.thinking else text).append(buffer[:at])
                buffer = buffer[at + len(tag):]
                self.thinking = not self.thinking
                continue
            keep = next((n for n in range(min(len(tag) - 1, len(buffer)), 0, -1)
                         if tag.startswith(buffer[-n:])), 0)
            (reasoning if self.thinking else text).append(buffer[:len(buffer) - keep])
            self.pending = buffer[len(buffer) - keep:]
            break
        return "".join(text), "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        """At the end: a held-back piece that never became a tag was plain text."""
        rest, self.pending = self.pending, ""
        return ("", rest) if self.thinking else (rest, "")
