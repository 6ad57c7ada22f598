"""Server-sent events decoding for adapters (the encoder for clients lives in gateway/v1/sse.py).

    decode_events(lines_of(response))   a streamed response's events
"""

import codecs
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class ByteStream(Protocol):
    def aiter_bytes(self) -> AsyncIterator[bytes]: ...


@dataclass(slots=True)
class ServerSentEvent:
    event: str
    data: str


async def lines_of(response: ByteStream) -> AsyncIterator[str]:
    """A streamed response's lines (an httpx.Response's), split at CRLF, CR or LF as the SSE
    spec says, and read as UTF-8, as the spec says too. One generator per chunk where
    ``response.aiter_lines()`` stacks four (raw, bytes, text, lines): every event of every stream
    passes through here (bench/RESULTS.md). Unlike str.splitlines(), never splits at U+2028 and
    the like, which a provider may leave unescaped inside a JSON string."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer, after_cr = "", False
    async for chunk in response.aiter_bytes():
        text = decoder.decode(chunk)
        if after_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across two chunks
        after_cr = text.endswith("\r")
        lines = (buffer + text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
        buffer = lines.pop()
        for line in lines:
            yield line
    buffer += decoder.decode(b"", final=True)
    if buffer:
        yield buffer


async def decode_events(lines: AsyncIterator[str]) -> AsyncIterator[ServerSentEvent]:
    """Yield events from SSE lines: ``data:`` lines joined until a blank line, comments skipped."""
    event, data = "", []
    async for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data))
            event, data = "", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
    if data:
        yield ServerSentEvent(event or "message", "\n".join(data))
