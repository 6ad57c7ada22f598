"""demo/echo: a built-in, offline model. It answers with the last user message, word by word.

Its tokens are the pieces ``\\s*\\S+`` of the text (a word with its leading space), counted the
same way in and out, so the usage it reports is exactly what it read and produced.
"""

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator

from providers.adapters.base import Adapter
from providers.types import (
    ChatRequest,
    ChatResult,
    Delta,
    Finish,
    StreamEvent,
    Target,
    Usage,
    UsageReport,
)

TOKEN = re.compile(r"\s*\S+")
EMPTY_REPLY = "(demo/echo received no text to echo)"


def count_tokens(text: str) -> int:
    return len(TOKEN.findall(text))


class DemoAdapter(Adapter):
    OPERATIONS = frozenset({"complete", "stream"})

    wire_format = "demo"

    def _answer(self, request: ChatRequest) -> tuple[list[str], str, Usage]:
        last_user = next((m for m in reversed(request.messages) if m.role == "user"), None)
        text = last_user.text() if last_user else ""
        pieces = TOKEN.findall(text) or TOKEN.findall(EMPTY_REPLY)
        finish = "stop"
        if request.max_output_tokens is not None and len(pieces) > request.max_output_tokens:
            pieces, finish = pieces[: request.max_output_tokens], "length"
        if pieces:
            pieces[0] = pieces[0].lstrip()
        input_tokens = sum(count_tokens(m.text()) for m in request.messages)
        return pieces, finish, Usage(input_tokens=input_tokens, output_tokens=len(pieces))

    async def complete(self, request: ChatRequest, target: Target) -> ChatResult:
        pieces, finish, usage = self._answer(request)
        return ChatResult(id=f"demo-{uuid.uuid4().hex}", content="".join(pieces), finish_reason=finish,
                          usage=usage, upstream_model=target.upstream_model)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        pieces, finish, usage = self._answer(request)
        delay = float(target.quirks.get("word_delay_ms", 0)) / 1000
        started = time.monotonic()
        for index, piece in enumerate(pieces):
            if delay:
                # Paced against the start so a slow consumer does not stretch the stream.
                await asyncio.sleep(max(0.0, started + index * delay - time.monotonic()))
            yield Delta(content=piece)
        yield Finish(finish)
        yield UsageReport(usage)
