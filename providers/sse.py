"""Server-sent events decoding for adapters (the encoder for clients lives in gateway/v1/sse.py)."""

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class ServerSentEvent:
    event: str
    data: str


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
