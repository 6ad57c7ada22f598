"""The legacy Completions route of the fake OpenAI upstream (tests/fakes/openai_upstream.py).

What it follows (OpenAI's API reference, "Completions" — legacy, and openai-python's
``types/completion.py``, ``completion_choice.py``): ``POST /v1/completions`` ``{"model", "prompt",
"max_tokens"?, "suffix"?, "echo"?, "logprobs"? (0-5), "best_of"?, "stream"?, "stream_options"?, ...}``;
``prompt`` a string, an array of token ids, or an array of one of either. Answer ``{"id": "cmpl-...",
"object": "text_completion", "created", "model", "choices": [{"text", "index", "logprobs",
"finish_reason"}], "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}``; ``logprobs``
is null unless asked, else ``{"tokens", "token_logprobs", "top_logprobs", "text_offset"}``
(``top_logprobs`` a list of token -> logprob maps with ``logprobs`` entries each). A stream is
data-only SSE of text_completion objects, a piece of text per chunk (its logprobs beside it), the
finish reason on the last choice, then with ``stream_options.include_usage`` a chunk with
``choices: []`` and the usage, then ``data: [DONE]``. ``best_of`` with ``stream`` is a 400.
This fake's own choices: a token is a word (of text; a token id is one token); ``echo`` puts the
prompt (text, or the ids joined by spaces) before the answer; the answer is the scripted Reply's
text (none with ``max_tokens`` 0, which scores the prompt); ``best_of`` candidates are all counted in ``completion_tokens``, as OpenAI bills them.
"""

import json
import time
import uuid

from aiohttp import web


def add_text_completion_routes(app: web.Application, fake) -> None:
    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if fake.record:
            fake.requests.append({"headers": dict(request.headers), "body": body, "at": time.monotonic()})
        if fake.api_key is not None and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
            return fake.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if body.get("stream") and (body.get("best_of") or 1) > 1:
            return fake.error(400, "Cannot stream results with best_of > 1.", "invalid_request_error", None)
        reply = fake.next_reply()
        if reply.status != 200:
            return fake.error(reply.status, reply.error_message, reply.error_type, reply.error_code, reply.headers)
        prompt = body["prompt"]
        prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
        answer = [] if body.get("max_tokens") == 0 else reply.text.split(" ")  # 0: only score the prompt
        words = (prompt_text.split(" ") if body.get("echo") else []) + answer
        pieces = [words[0]] + [" " + word for word in words[1:]] if words else []
        prompt_tokens = len(prompt_text.split()) + len((body.get("suffix") or "").split())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(answer) * (body.get("best_of") or 1)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        head = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": body["model"]}
        if body.get("stream"):
            return await stream(request, body, head, pieces, usage, reply.finish_reason)
        choice = {"text": "".join(pieces), "index": 0, "logprobs": logprobs_of(pieces, body.get("logprobs")),
                  "finish_reason": reply.finish_reason}
        return web.json_response({**head, "choices": [choice], "usage": usage},
                                 headers={"x-request-id": f"req_{uuid.uuid4().hex}"})

    app.router.add_post("/v1/completions", completions)


def logprobs_of(pieces: list[str], asked: int | None, offset: int = 0) -> dict | None:
    if asked is None:
        return None
    offsets, at = [], offset
    for piece in pieces:
        offsets.append(at)
        at += len(piece)
    return {"tokens": pieces, "token_logprobs": [-0.25] * len(pieces),
            "top_logprobs": [{piece: -0.25} for piece in pieces] if asked else None, "text_offset": offsets}


async def stream(request: web.Request, body: dict, head: dict, pieces: list[str], usage: dict,
                 reason: str) -> web.StreamResponse:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)

    async def send(choices: list, chunk_usage: dict | None = None) -> None:
        chunk = {**head, "choices": choices}
        if include_usage:
            chunk["usage"] = chunk_usage
        await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    at = 0
    for piece in pieces:
        await send([{"text": piece, "index": 0, "logprobs": logprobs_of([piece], body.get("logprobs"), at),
                     "finish_reason": None}])
        at += len(piece)
    await send([{"text": "", "index": 0, "logprobs": None, "finish_reason": reason}])
    if include_usage:
        await send([], usage)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response
