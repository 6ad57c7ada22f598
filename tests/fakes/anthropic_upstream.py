"""A fake Anthropic Messages API over real HTTP on 127.0.0.1.

It speaks ../shared/providers/WIRE_FORMATS.md section 4: ``POST /v1/messages`` (and
``POST /v1/messages/count_tokens``, answering ``{"input_tokens": N}``) checked for
``x-api-key`` and ``anthropic-version: 2023-06-01``; the Message object (thinking, text and
tool_use blocks, stop_reason, usage with the cache fields beside input_tokens); streams where
every event has an ``event:`` line equal to ``data.type`` (message_start carrying the input and
cache usage with output_tokens 1, content_block_start / delta / stop per block, one ``ping`` after
the first block start, message_delta with the cumulative output_tokens (and output_tokens_details
when scripted), message_stop, no ``[DONE]``); a thinking block streams thinking_delta pieces then
one signature_delta, a redacted_thinking block comes whole in its content_block_start; error bodies
``{"type": "error", "error": {...}, "request_id": ...}`` and ``event: error`` mid-stream. It refuses
what Anthropic refuses and a test could get wrong: no max_tokens, a system role in messages, a
thinking budget out of range, ``context_management`` without its beta in ``anthropic-beta``, a
replayed thinking block without its signature or changed from what this fake signed, a
redacted_thinking block without its data. Every request is kept in ``requests`` (path, query,
headers, body).

Tests script it with ``enqueue(Reply(...))``, or explicit ``blocks`` built with ``thinking_block``,
``redacted_block``, ``text_block`` and ``tool_block``; unscripted requests get the default reply.
"""

import asyncio
import json
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.server import ScriptedServer

API_KEY = "sk-ant-fake-upstream"
API_VERSION = "2023-06-01"
DEFAULT_REPLY = "Hello from the fake Claude."
SIGNATURE = "EqQBCkYIBxgCKkB-fake-signature"
CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"


@dataclass
class Reply:
    text: str = DEFAULT_REPLY
    status: int = 200
    error_type: str = "api_error"
    error_message: str = "The fake upstream failed as scripted."
    headers: dict[str, str] = field(default_factory=dict)
    tool_calls: list[tuple[str, dict]] = field(default_factory=list)  # (name, input): tool_use blocks after text
    thinking: str | None = None  # a thinking block first, signed with SIGNATURE
    blocks: list[dict] | None = None  # the answer's content blocks, in order (instead of the above)
    stop_reason: str | None = None  # default: tool_use with tool calls, else end_turn
    usage: dict | None = None  # override the usage object
    stream_error_after: int | None = None  # this many text deltas, then event: error
    cut_after: int | None = None  # this many text deltas, then drop the connection
    raw_body: str | None = None  # a non-streamed answer: 200 with exactly this text as its JSON body
    raw_event: str | None = None  # a stream: this SSE text (its event: and data: lines) before a text delta
    raw_event_after: int = 1  # ... after this many text deltas; the stream then goes on as scripted


def thinking_block(thinking: str, signature: str = SIGNATURE) -> dict:
    return {"type": "thinking", "thinking": thinking, "signature": signature}


def redacted_block(data: str) -> dict:
    return {"type": "redacted_thinking", "data": data}


def text_block(text: str) -> dict:
    return {"type": "text", "text": text}


def tool_block(tool_id: str, name: str, arguments: dict) -> dict:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}


def words_of(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0]] + [" " + word for word in words[1:]]


def count_input_tokens(body: dict) -> int:
    text = json.dumps(body.get("system") or "") + json.dumps(body.get("messages") or [])
    return len(text.split())


def fragments(text: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i:i + size] for i in range(0, len(text), size)]


class FakeAnthropic(ScriptedServer):
    thread_name = "fake-anthropic"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)
        self.signed: dict[str, str] = {}  # signature -> the thinking this fake signed with it

    @property
    def base_url(self) -> str:
        return self.address  # like api.anthropic.com: the client adds /v1/messages

    def reset(self) -> None:
        super().reset()
        self.signed.clear()
        self.api_key = API_KEY

    @property
    def bodies(self) -> list[dict]:
        return [request["body"] for request in self.requests]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        return app

    def error(self, status: int, type_: str, message: str, headers=None) -> web.Response:
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}
        return web.json_response(body, status=status, headers={"request-id": request_id, **(headers or {})})

    def refusal(self, request: web.Request, body: dict) -> web.Response | None:
        """Anthropic's own 4xx answers to a request it cannot take."""
        if request.headers.get("x-api-key") != self.api_key:
            return self.error(401, "authentication_error", "invalid x-api-key")
        if request.headers.get("anthropic-version") != API_VERSION:
            return self.error(400, "invalid_request_error", "anthropic-version: header is required")
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return self.error(400, "invalid_request_error", f"{name}: Field required")
        for index, message in enumerate(body["messages"]):
            if message.get("role") not in ("user", "assistant"):
                return self.error(400, "invalid_request_error",
                                  f"messages.{index}.role: Input should be 'user' or 'assistant'")
        for index, message in enumerate(body["messages"]):
            problem = self.replayed_thinking_problem(message.get("content"))
            if problem:
                return self.error(400, "invalid_request_error", f"messages.{index}.content.{problem}")
        thinking = body.get("thinking") or {}
        if thinking.get("type") == "enabled" and not 1024 <= thinking.get("budget_tokens", 0) < body["max_tokens"]:
            return self.error(400, "invalid_request_error",
                              "thinking.budget_tokens: must be >= 1024 and less than max_tokens")
        betas = [beta.strip() for beta in request.headers.get("anthropic-beta", "").split(",")]
        if "context_management" in body and CONTEXT_MANAGEMENT_BETA not in betas:
            return self.error(400, "invalid_request_error", "context_management: Extra inputs are not permitted")
        return None

    def replayed_thinking_problem(self, content) -> str | None:
        for index, block in enumerate(content if isinstance(content, list) else ()):
            if block.get("type") == "thinking":
                signature = block.get("signature")
                if not signature:
                    return f"{index}.thinking.signature: Field required"
                if signature in self.signed and self.signed[signature] != block.get("thinking"):
                    return f"{index}: Invalid `signature` in `thinking` block"
            if block.get("type") == "redacted_thinking" and not block.get("data"):
                return f"{index}.redacted_thinking.data: Field required"
        return None

    async def count_tokens(self, request: web.Request) -> web.Response:
        """``{"input_tokens": N}`` for a Messages body without max_tokens (Anthropic refuses the
        output and sampling settings here), counted as the messages endpoint counts its input."""
        body = await request.json()
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if request.headers.get("x-api-key") != self.api_key:
            return self.error(401, "authentication_error", "invalid x-api-key")
        if request.headers.get("anthropic-version") != API_VERSION:
            return self.error(400, "invalid_request_error", "anthropic-version: header is required")
        for name in ("model", "messages"):
            if name not in body:
                return self.error(400, "invalid_request_error", f"{name}: Field required")
        for name in ("max_tokens", "stream", "temperature", "top_p", "stop_sequences", "metadata"):
            if name in body:
                return self.error(400, "invalid_request_error", f"{name}: Extra inputs are not permitted")
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.error_type, reply.error_message, reply.headers)
        return web.json_response({"input_tokens": count_input_tokens(body)},
                                 headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"path": request.path, "query": dict(request.query), "headers": dict(request.headers),
                              "body": body})
        refused = self.refusal(request, body)
        if refused is not None:
            return refused
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.error_type, reply.error_message, reply.headers)
        blocks = self.blocks_for(reply)
        usage = reply.usage or {
            "input_tokens": count_input_tokens(body), "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "output_tokens": self.count_output(blocks), "service_tier": "standard",
        }
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": body["model"],
            "content": blocks, "stop_reason": reply.stop_reason or (
                "tool_use" if any(block["type"] == "tool_use" for block in blocks) else "end_turn"),
            "stop_sequence": None, "usage": usage,
        }
        if body.get("stream"):
            return await self.stream(request, message, reply)
        if reply.raw_body is not None:
            return web.Response(text=reply.raw_body, content_type="application/json")
        return web.json_response(message, headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"})

    def blocks_for(self, reply: Reply) -> list[dict]:
        if reply.blocks is not None:
            blocks = [dict(block) for block in reply.blocks]
        else:
            blocks = [thinking_block(reply.thinking)] if reply.thinking else []
            if reply.text:
                blocks.append(text_block(reply.text))
            for number, (name, arguments) in enumerate(reply.tool_calls, start=1):
                blocks.append(tool_block(f"toolu_0{number}", name, arguments))
        self.signed.update({block["signature"]: block["thinking"] for block in blocks if block["type"] == "thinking"})
        return blocks

    @staticmethod
    def count_output(blocks: list[dict]) -> int:
        return sum(len((block.get("text") or block.get("thinking") or "").split()) or 5 for block in blocks)

    @staticmethod
    def split_usage(usage: dict) -> tuple[dict, dict]:
        """message_start's usage (input and cache counts; output_tokens 1) and message_delta's
        (the cumulative output, with its details when there are any)."""
        start = {key: value for key, value in usage.items() if key not in ("output_tokens", "output_tokens_details")}
        end = {key: usage[key] for key in ("output_tokens", "output_tokens_details") if key in usage}
        return {**start, "output_tokens": 1}, end

    # --- streaming ------------------------------------------------------------------------
    async def stream(self, request: web.Request, message: dict, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "request-id": f"req_{uuid.uuid4().hex[:24]}"})
        await response.prepare(request)

        async def send(data: dict) -> None:
            await response.write(f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode())

        start_usage, end_usage = self.split_usage(message["usage"])
        await send({"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                         "usage": start_usage}})
        text_deltas = 0
        pinged = False
        try:
            for index, block in enumerate(message["content"]):
                await send({"type": "content_block_start", "index": index, "content_block": self.shell(block)})
                if not pinged:
                    await send({"type": "ping"})
                    pinged = True
                for delta in self.deltas(block):
                    if delta["type"] == "text_delta":
                        if reply.stream_error_after is not None and text_deltas == reply.stream_error_after:
                            await send({"type": "error", "error": {"type": reply.error_type,
                                                                   "message": reply.error_message}})
                            return response
                        if reply.cut_after is not None and text_deltas == reply.cut_after:
                            request.transport.close()
                            return response
                        if reply.raw_event is not None and text_deltas == reply.raw_event_after:
                            await response.write(reply.raw_event.encode() + b"\n\n")
                        text_deltas += 1
                    await send({"type": "content_block_delta", "index": index, "delta": delta})
                await send({"type": "content_block_stop", "index": index})
            if not pinged:
                await send({"type": "ping"})
            await send({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
                                                           "stop_sequence": None},
                        "usage": end_usage})
            await send({"type": "message_stop"})
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    @staticmethod
    def shell(block: dict) -> dict:
        if block["type"] == "text":
            return {"type": "text", "text": ""}
        if block["type"] == "thinking":
            return {"type": "thinking", "thinking": "", "signature": ""}
        if block["type"] == "redacted_thinking":
            return dict(block)  # no deltas: the data comes whole
        return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}

    @staticmethod
    def deltas(block: dict) -> list[dict]:
        if block["type"] == "text":
            return [{"type": "text_delta", "text": word} for word in words_of(block["text"])]
        if block["type"] == "thinking":
            return [{"type": "thinking_delta", "thinking": word} for word in words_of(block["thinking"])] + [
                {"type": "signature_delta", "signature": block["signature"]}]
        if block["type"] == "redacted_thinking":
            return []
        # The first fragment is often empty, as Anthropic sends it.
        return [{"type": "input_json_delta", "partial_json": part}
                for part in ["", *fragments(json.dumps(block["input"]))] if block["input"] or not part]

