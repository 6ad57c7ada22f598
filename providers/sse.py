"""Server-sent events decoding for adapters (the encoder for clients lives in gateway/v1/sse.py).

    events_of(response)                 a streamed response's events, split and decoded in one
                                        pass per chunk read: one generator between the socket and
                                        the adapter, where lines then events stacked two, and the
                                        lines generator yielded twice an event
    lines_of(response)                  its lines, for a wire format that is not SSE (Gemini's)
"""

import codecs
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Protocol


class ByteStream(Protocol):
    def aiter_bytes(self) -> AsyncIterator[bytes]: ...


@dataclass(slots=True)
class ServerSentEvent:
    event: str
    data: str


class LineSplitter:
    """Bytes in, lines out, split at CRLF, CR or LF as the SSE spec says and read as UTF-8, as
    the spec says too, wherever the chunks happen to end. Unlike str.splitlines(), never splits at
    U+2028 and the like, which a provider may leave unescaped inside a JSON string."""

    __slots__ = ("decoder", "buffer", "after_cr")

    def __init__(self):
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.buffer, self.after_cr = "", False

    def feed(self, chunk: bytes) -> list[str]:
        text = self.decoder.decode(chunk)
        if self.after_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across two chunks
        self.after_cr = text.endswith("\r")
        lines = (self.buffer + text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.buffer = lines.pop()
        return lines

    def close(self) -> list[str]:
        rest = self.buffer + self.decoder.decode(b"", final=True)
        self.buffer = ""
        return [rest] if rest else []


class EventDecoder:
    """Lines in, events out: ``data:`` lines joined until a blank line, comments skipped."""

    __slots__ = ("event", "data")

    def __init__(self):
        self.event, self.data = "", []

    def feed(self, lines: Iterable[str]) -> list[ServerSentEvent]:
        events = []
        for line in lines:
            if not line:
                if self.data:
                    events.append(ServerSentEvent(self.event or "message", "\n".join(self.data)))
                self.event, self.data = "", []
            elif line[0] != ":":
                name, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if name == "data":
                    self.data.append(value)
                elif name == "event":
                    self.event = value
        return events

    def close(self) -> list[ServerSentEvent]:
        return self.feed([""])


async def events_of(response: ByteStream) -> AsyncIterator[ServerSentEvent]:
    """A streamed response's events (an httpx.Response's, a ProviderResponse's)."""
    splitter, decoder = LineSplitter(), EventDecoder()
    async for chunk in response.aiter_bytes():
        for event in decoder.feed(splitter.feed(chunk)):
            yield event
    for event in decoder.feed(splitter.close()) + decoder.close():
        yield event


async def lines_of(response: ByteStream) -> AsyncIterator[str]:
    """A streamed response's lines (LineSplitter)."""
    splitter = LineSplitter()
    async for chunk in response.aiter_bytes():
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.close():
        yield line
