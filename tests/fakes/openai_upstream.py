"""A fake OpenAI Chat Completions upstream over real HTTP on 127.0.0.1.

It speaks the wire format of ../shared/providers/WIRE_FORMATS.md section 1: the completion
object, data-only SSE chunks (role chunk first, content chunks, a finish chunk, the usage chunk
with ``choices: []`` only when ``stream_options.include_usage`` is set, then ``data: [DONE]``),
token ``logprobs`` on the choice when the request asks (``logprobs``, ``top_logprobs``),
``Authorization: Bearer`` auth, the ``{"error": {...}}`` body with ``x-request-id``, and a
mid-stream error as ``data: {"error": {...}}``.

Tests script it with ``enqueue(Reply(...))``; unscripted requests get the default reply.
Sora video jobs (section 3: ``POST /v1/videos`` multipart or JSON, ``GET /v1/videos/{id}``,
``.../content``, ``DELETE``) are scripted on ``videos`` (tests/fakes/video_jobs.py) and served by
tests/fakes/openai_videos.py; the Images and Audio routes live in tests/fakes/openai_images.py and
tests/fakes/openai_audio.py, Embeddings and Moderations in tests/fakes/openai_embeddings.py, legacy
Completions in tests/fakes/openai_text_completions.py.
Run standalone (for bench/): ``python -m tests.fakes.openai_upstream --port 9100``.
"""

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.openai_audio import add_audio_routes
from tests.fakes.openai_embeddings import add_embedding_routes
from tests.fakes.openai_images import add_image_routes
from tests.fakes.openai_text_completions import add_text_completion_routes
from tests.fakes.openai_videos import SoraVideos
from tests.fakes.server import ScriptedServer
from tests.fakes.video_jobs import VideoBook

DEFAULT_REPLY = "Hello from the fake upstream."
API_KEY = "sk-fake-upstream"


@dataclass
class Reply:
    text: str = DEFAULT_REPLY
    status: int = 200
    error_type: str = "server_error"
    error_code: str | None = None
    error_message: str = "The fake upstream failed as scripted."
    headers: dict[str, str] = field(default_factory=dict)
    chunk_delay: float = 0.0  # seconds between stream chunks
    stream_error_after: int | None = None  # send this many content chunks, then a data: {"error"} event
    cut_after: int | None = None  # send this many content chunks, then drop the connection
    usage: dict | None = None  # override the usage object
    finish_reason: str = "stop"
    send_usage: bool = True
    hold: bool = False  # answer only after release() is called
    reset: bool = False  # drop the connection before sending anything
    malformed: bool = False  # answer 200 with a body that is not JSON
    raw_body: str | None = None  # a non-streamed answer: 200 with exactly this text as its JSON body
    raw_event: str | None = None  # a stream: this SSE text (e.g. "data: [1,2,3]") before a content chunk
    raw_event_after: int = 1  # ... after this many content chunks; the stream then goes on as scripted
    tool_call: tuple[str, str] | None = None  # (function name, JSON arguments): answer with a tool call
    tool_calls: list[tuple[str, str]] | None = None  # several, in one answer (ids call_1, call_2, ...)
    reasoning: str | None = None  # reasoning before the answer, in the shape reasoning_shape names
    # Recorded deviations of compatible providers (WIRE_FORMATS.md 8b):
    reasoning_shape: str = "reasoning_content"  # | "reasoning" (Groq) | "think_tags" (MiniMax) | "mistral"
    usage_placement: str = "separate"  # | "finish_chunk" (DeepSeek, Mistral, Moonshot) | "x_groq" (Groq)
    citations: list[str] | None = None  # Perplexity: top-level on the answer and on every chunk


def count_prompt_tokens(messages: list) -> int:
    words = 0
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        words += len(str(content).split())
    return words + 3 * len(messages)


def reasoning_deltas(reply: Reply) -> list[dict]:
    """The stream deltas carrying a reply's reasoning, in the provider's shape."""
    if not reply.reasoning:
        return []
    pieces = split_words(reply.reasoning)
    if reply.reasoning_shape == "think_tags":
        # The tags arrive cut across chunks, as token streams do.
        return [{"content": "<thi"}, {"content": "nk>" + pieces[0]}] + [{"content": p} for p in pieces[1:]] + [
            {"content": "</th"}, {"content": "ink>"}]
    if reply.reasoning_shape == "mistral":
        return [{"content": [{"type": "thinking", "thinking": [{"type": "text", "text": p}]}]} for p in pieces]
    return [{reply.reasoning_shape: p} for p in pieces]


def token_logprobs(body: dict, words: list[str], start: int = 0) -> dict | None:
    """A choice's ``logprobs`` when the request asked for them (WIRE_FORMATS 1, "Logprobs shape"):
    each word a token, its logprob -0.25 per position, ``top_logprobs`` alternatives after it."""
    if not body.get("logprobs"):
        return None
    top = body.get("top_logprobs") or 0
    content = []
    for offset, word in enumerate(words):
        logprob = -0.25 * (start + offset + 1)
        alternatives = [{"token": word, "logprob": logprob, "bytes": list(word.encode())}]
        alternatives += [{"token": f" alt{n}", "logprob": logprob - n, "bytes": list(f" alt{n}".encode())}
                         for n in range(1, top)]
        content.append({"token": word, "logprob": logprob, "bytes": list(word.encode()),
                        "top_logprobs": alternatives[:top]})
    return {"content": content, "refusal": None}


def split_words(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0]] + [" " + word for word in words[1:]]


class FakeOpenAI(SoraVideos, ScriptedServer):
    thread_name = "fake-openai"
    reply_class = Reply

    def __init__(self, *, api_key: str | None = API_KEY, record: bool = True):
        super().__init__(api_key=api_key)
        self.record = record  # keep every request for assertions (off under load: it only grows)
        self.open_streams = 0
        self.closed_streams = 0
        self.abandoned_streams = 0  # closed by the client before the fake finished sending
        self.flapping: dict[str, int] = {}  # upstream model -> its requests so far; every other one fails
        self._released: asyncio.Event | None = None
        self.videos = VideoBook(prefix="video")

    @property
    def base_url(self) -> str:
        return f"{self.address}/v1"

    def flap(self, upstream_model: str) -> None:
        """Fail every other request for this model (503), whatever the script says."""
        self.flapping[upstream_model] = 0

    def release(self) -> None:
        """Let every held reply (Reply(hold=True)) answer."""
        self.loop.call_soon_threadsafe(self._gate().set)

    def _gate(self) -> asyncio.Event:
        if self._released is None:
            self._released = asyncio.Event()
        return self._released

    def reset(self) -> None:
        super().reset()
        self._released = None
        self.flapping.clear()
        self.open_streams = self.closed_streams = self.abandoned_streams = 0
        self.videos.reset()
        self.chosen_vectors: dict[str, list[float]] = {}  # text -> the embedding to answer (openai_embeddings.py)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        add_image_routes(app, self)
        add_audio_routes(app, self)
        add_embedding_routes(app, self)
        add_text_completion_routes(app, self)
        app.router.add_post("/v1/videos", self.create_video)
        app.router.add_get("/v1/videos/{id}", self.retrieve_video)
        app.router.add_delete("/v1/videos/{id}", self.delete_video)
        app.router.add_get("/v1/videos/{id}/content", self.video_content)
        return app

    def error(self, status: int, message: str, type_: str, code: str | None, headers=None) -> web.Response:
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        return web.json_response(body, status=status, headers={"x-request-id": f"req_{uuid.uuid4().hex}",
                                                                **(headers or {})})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if self.record:
            self.requests.append({"headers": dict(request.headers), "body": body, "at": time.monotonic()})
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if body.get("model") in self.flapping:
            count = self.flapping[body["model"]] = self.flapping[body["model"]] + 1
            reply = Reply(status=503, error_message="flapping") if count % 2 else Reply()
        else:
            reply = self.next_reply()
        if reply.hold:
            await self._gate().wait()
        if reply.reset:
            request.transport.close()
            return web.Response()
        if reply.malformed:
            return web.Response(text='{"id": "chatcmpl-x", "choices": [', content_type="application/json")
        if reply.raw_body is not None and not body.get("stream"):
            return web.Response(text=reply.raw_body, content_type="application/json")
        if reply.status != 200:
            return self.error(reply.status, reply.error_message, reply.error_type, reply.error_code, reply.headers)
        words = split_words(reply.text)
        usage = reply.usage or {
            "prompt_tokens": count_prompt_tokens(body.get("messages", [])),
            "completion_tokens": len(words),
            "total_tokens": count_prompt_tokens(body.get("messages", [])) + len(words),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }
        if body.get("stream"):
            return await self.stream(request, body, reply, words, usage)
        message = {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
        finish_reason = reply.finish_reason
        if reply.tool_call or reply.tool_calls:
            message["content"] = None
            message["tool_calls"] = [{"id": f"call_{number}", "type": "function",
                                      "function": {"name": name, "arguments": arguments}}
                                     for number, (name, arguments) in enumerate(calls_of(reply), start=1)]
            finish_reason = "tool_calls"
        if reply.reasoning:
            if reply.reasoning_shape == "think_tags":
                message["content"] = f"<think>{reply.reasoning}</think>{message['content']}"
            elif reply.reasoning_shape == "mistral":
                message["content"] = [{"type": "thinking", "thinking": [{"type": "text", "text": reply.reasoning}]},
                                      {"type": "text", "text": message["content"]}]
            else:
                message[reply.reasoning_shape] = reply.reasoning
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "logprobs": token_logprobs(body, words),
                         "finish_reason": finish_reason}],
            "usage": usage, "service_tier": "default", "system_fingerprint": "fp_fake",
        }
        if reply.citations:
            completion["citations"] = reply.citations
        return web.json_response(completion, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})

    async def stream(self, request, body, reply: Reply, words: list[str], usage: dict) -> web.StreamResponse:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "x-request-id": f"req_{uuid.uuid4().hex}"})
        await response.prepare(request)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body["model"]}

        async def send(choices, chunk_usage=None, **extra):
            chunk = {**head, "choices": choices}
            if include_usage:
                chunk["usage"] = chunk_usage
            if reply.citations:
                chunk["citations"] = reply.citations
            chunk.update(extra)
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        self.open_streams += 1
        finished = False
        try:
            if reply.tool_call or reply.tool_calls:
                await self.stream_tool_call(send, reply)
            elif not await self.stream_words(request, response, send, reply, words, usage, body):
                return response  # scripted failure mid-stream
            if include_usage and reply.send_usage and reply.usage_placement == "separate":
                await send([], usage)
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            finished = True
            return response
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        finally:
            self.open_streams -= 1
            self.closed_streams += 1
            if not finished and reply.stream_error_after is None and reply.cut_after is None:
                self.abandoned_streams += 1

    async def stream_words(self, request, response, send, reply: Reply, words: list[str], usage: dict,
                           body: dict) -> bool:
        """Role chunk, optional reasoning, one chunk per word, the finish chunk. False when the
        script made it fail part-way."""
        await send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                     "finish_reason": None}])
        for delta in reasoning_deltas(reply):
            await send([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
        for index, word in enumerate(words):
            if reply.stream_error_after is not None and index == reply.stream_error_after:
                error = {"error": {"message": reply.error_message, "type": reply.error_type,
                                   "param": None, "code": reply.error_code}}
                await response.write(b"data: " + json.dumps(error).encode() + b"\n\n")
                return False
            if reply.cut_after is not None and index == reply.cut_after:
                request.transport.close()
                return False
            if reply.raw_event is not None and index == reply.raw_event_after:
                await response.write(reply.raw_event.encode() + b"\n\n")
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            await send([{"index": 0, "delta": {"content": word}, "logprobs": token_logprobs(body, [word], index),
                         "finish_reason": None}])
        finish = [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": reply.finish_reason}]
        if reply.usage_placement == "finish_chunk":
            await send(finish, usage, usage=usage)
        elif reply.usage_placement == "x_groq":
            await send(finish, x_groq={"id": "req_fake", "usage": usage})
        else:
            await send(finish)
        return True

    async def stream_tool_call(self, send, reply: Reply) -> None:
        """WIRE_FORMATS 1, streaming item 3: the first delta carries index, id, type and name
        with empty arguments; later deltas carry only index and argument fragments."""
        for index, (name, arguments) in enumerate(calls_of(reply)):
            await send([{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [
                {"index": index, "id": f"call_{index + 1}", "type": "function",
                 "function": {"name": name, "arguments": ""}}]}, "logprobs": None, "finish_reason": None}])
            middle = len(arguments) // 2
            for fragment in (arguments[:middle], arguments[middle:]):
                await send([{"index": 0, "delta": {"tool_calls": [{"index": index, "function": {
                    "arguments": fragment}}]}, "logprobs": None, "finish_reason": None}])
        await send([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}])


def calls_of(reply: Reply) -> list[tuple[str, str]]:
    return reply.tool_calls or [reply.tool_call]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    fake = FakeOpenAI(record=False)
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
