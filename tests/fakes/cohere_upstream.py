"""A fake Cohere v2 chat upstream over real HTTP on 127.0.0.1.

It speaks WIRE_FORMATS.md section 8a: ``POST /v2/chat`` with ``Authorization: Bearer <key>``;
the response ``{id, finish_reason, message{role, content[], tool_calls, tool_plan}, usage{
billed_units, tokens}}``; the stream as SSE events discriminated by ``data.type`` (message-start,
content-start/-delta/-end, tool-plan-delta, tool-call-start/-delta/-end, message-end carrying
finish_reason and usage; one running ``index`` over content blocks and tool calls, so a call after
a thinking block is not index 0), each with an ``event:`` line unless the reply says otherwise; errors
as ``{"message": str}`` (401 says "invalid api token"). Like Cohere it refuses request keys it
does not know, so an OpenAI-only field leaking through fails loudly.

Tests script it with ``enqueue(Reply(...))``; unscripted requests get the default reply. The embed
and rerank routes are tests/fakes/cohere_embed.py's.
"""

import asyncio
import json
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.cohere_embed import add_embed_routes
from tests.fakes.server import ScriptedServer

API_KEY = "co-fake-upstream-key"
DEFAULT_REPLY = "Hello from the fake Cohere."
PREAMBLE_TOKENS = 64  # Cohere's own prompt scaffolding: in usage.tokens, never billed
REQUEST_KEYS = {
    "model", "messages", "tools", "strict_tools", "documents", "citation_options", "response_format",
    "max_tokens", "temperature", "p", "k", "seed", "stop_sequences", "frequency_penalty",
    "presence_penalty", "logprobs", "tool_choice", "thinking", "safety_mode", "priority", "stream",
}
ROLES = {"system", "user", "assistant", "tool"}


@dataclass
class Reply:
    text: str = DEFAULT_REPLY
    status: int = 200
    error_message: str = "internal server error"
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "COMPLETE"
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, JSON arguments)
    tool_plan: str | None = None
    thinking: str | None = None
    usage: dict | None = None  # override the usage object
    send_usage: bool = True
    stream_error_after: int | None = None  # this many text deltas, then message-end ERROR with error
    cut_after: int | None = None  # this many text deltas, then drop the connection
    event_lines: bool = True  # write "event: <type>" before each data line
    done_marker: bool = False  # write "data: [DONE]" after message-end
    raw_body: str | None = None  # a non-streamed answer: 200 with exactly this text as its JSON body
    raw_event: str | None = None  # a stream: this SSE text (e.g. "data: [1,2,3]") before a text delta
    raw_event_after: int = 1  # ... after this many text deltas; the stream then goes on as scripted


def count_words(messages: list) -> int:
    words = 0
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):
            content = " ".join(block.get("text", "") for block in content if isinstance(block, dict))
        words += len(str(content).split())
    return words


def split_words(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0]] + [" " + word for word in words[1:]]


def halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [text[:middle], text[middle:]]


class FakeCohere(ScriptedServer):
    thread_name = "fake-cohere"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)

    @property
    def base_url(self) -> str:
        return self.address

    def reset(self) -> None:
        super().reset()
        self.api_key = API_KEY

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/chat", self.chat)
        add_embed_routes(app, self)
        return app

    @staticmethod
    def error(status: int, message: str, headers: dict | None = None) -> web.Response:
        return web.json_response({"message": message}, status=status, headers=headers)

    def invalid(self, body: dict) -> str | None:
        unknown = sorted(set(body) - REQUEST_KEYS)
        if unknown:
            return f"invalid request: unknown field: {unknown[0]}"
        if not body.get("model"):
            return "invalid request: model is required"
        for index, message in enumerate(body.get("messages") or [None]):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                return f"invalid request: messages[{index}].role must be one of system, user, assistant, tool"
            if message["role"] == "tool" and not message.get("tool_call_id"):
                return f"invalid request: messages[{index}].tool_call_id is required"
        if body.get("tool_choice") not in (None, "REQUIRED", "NONE"):
            return "invalid request: tool_choice must be one of REQUIRED, NONE"
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401, "invalid api token")
        problem = self.invalid(body)
        if problem:
            return self.error(400, problem)
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.error_message, reply.headers)
        words = split_words(reply.text) if not reply.tool_calls else []
        billed_input = count_words(body.get("messages", []))
        usage = reply.usage or {
            "billed_units": {"input_tokens": billed_input, "output_tokens": len(words)},
            "tokens": {"input_tokens": billed_input + PREAMBLE_TOKENS, "output_tokens": len(words) + 2},
        }
        finish_reason = "TOOL_CALL" if reply.tool_calls else reply.finish_reason
        if body.get("stream"):
            return await self.stream(request, reply, words, usage, finish_reason)
        if reply.raw_body is not None:
            return web.Response(text=reply.raw_body, content_type="application/json")
        message: dict = {"role": "assistant"}
        content = [{"type": "thinking", "thinking": reply.thinking}] if reply.thinking else []
        if words:
            content.append({"type": "text", "text": reply.text})
        if content:
            message["content"] = content
        if reply.tool_plan:
            message["tool_plan"] = reply.tool_plan
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{index}", "type": "function", "function": {"name": name, "arguments": arguments}}
                for index, (name, arguments) in enumerate(reply.tool_calls)
            ]
        answer = {"id": str(uuid.uuid4()), "finish_reason": finish_reason, "message": message}
        if reply.send_usage:
            answer["usage"] = usage
        return web.json_response(answer)

    async def stream(self, request, reply: Reply, words: list[str], usage: dict,
                     finish_reason: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        message_id = str(uuid.uuid4())

        async def send(event: dict) -> None:
            head = f"event: {event['type']}\n".encode() if reply.event_lines else b""
            await response.write(head + b"data: " + json.dumps(event).encode() + b"\n\n")

        try:
            await send({"type": "message-start", "id": message_id,
                        "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "",
                                              "tool_calls": [], "citations": []}}})
            index = 0
            if reply.thinking:
                await self.send_block(send, index, "thinking", split_words(reply.thinking))
                index += 1
            if reply.tool_plan:
                for piece in split_words(reply.tool_plan):
                    await send({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
            for position, (name, arguments) in enumerate(reply.tool_calls):
                # The stream's index counts the blocks before the call too (a thinking block), so
                # the first call is not always index 0; its id keeps the call's own number.
                await self.send_tool_call(send, index, position, name, arguments)
                index += 1
            if words:
                await send({"type": "content-start", "index": index,
                            "delta": {"message": {"content": {"type": "text", "text": ""}}}})
                for count, word in enumerate(words):
                    if count == reply.stream_error_after:
                        await send({"type": "message-end", "id": message_id,
                                    "delta": {"finish_reason": "ERROR", "error": reply.error_message}})
                        return await self.close(response)
                    if count == reply.cut_after:
                        request.transport.close()
                        return response
                    if reply.raw_event is not None and count == reply.raw_event_after:
                        await response.write(reply.raw_event.encode() + b"\n\n")
                    await send({"type": "content-delta", "index": index,
                                "delta": {"message": {"content": {"text": word}}}})
                await send({"type": "content-end", "index": index})
            end = {"finish_reason": finish_reason, **({"usage": usage} if reply.send_usage else {})}
            await send({"type": "message-end", "id": message_id, "delta": end})
            if reply.done_marker:
                await response.write(b"data: [DONE]\n\n")
            return await self.close(response)
        except (ConnectionResetError, asyncio.CancelledError):
            return response

    @staticmethod
    async def close(response: web.StreamResponse) -> web.StreamResponse:
        await response.write_eof()
        return response

    @staticmethod
    async def send_block(send, index: int, kind: str, pieces: list[str]) -> None:
        await send({"type": "content-start", "index": index,
                    "delta": {"message": {"content": {"type": kind, kind: ""}}}})
        for piece in pieces:
            await send({"type": "content-delta", "index": index, "delta": {"message": {"content": {kind: piece}}}})
        await send({"type": "content-end", "index": index})

    @staticmethod
    async def send_tool_call(send, index: int, position: int, name: str, arguments: str) -> None:
        """tool_calls is one object here, not a list (WIRE_FORMATS 8a, stream item 5)."""
        await send({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": {
            "id": f"call_{position}", "type": "function", "function": {"name": name, "arguments": ""}}}}})
        for fragment in halves(arguments):
            await send({"type": "tool-call-delta", "index": index,
                        "delta": {"message": {"tool_calls": {"function": {"arguments": fragment}}}}})
        await send({"type": "tool-call-end", "index": index})

