"""OpenAI's legacy text completions, native: POST {base}/completions for the models that serve no
chat (gpt-3.5-turbo-instruct, davinci-002, babbage-002, and compatible hosts' base models).

    request: {"model", "prompt": "text" | [token ids], "max_tokens", "temperature"?, "top_p"?,
              "stop"?, "seed"?, "user"?, "frequency_penalty"?, "presence_penalty"?, "logit_bias"?,
              "suffix"?, "echo"?, "logprobs"? (0-5), "best_of"?, "stream"?, "stream_options"?}
    answer:  {"id", "object": "text_completion", "model", "choices": [{"text", "index",
              "logprobs": null | {"tokens", "token_logprobs", "top_logprobs", "text_offset"},
              "finish_reason"}], "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}

A stream is data-only SSE of text_completion objects, one piece of text per chunk (with its
logprobs when asked), the finish reason on the choice's last, then (stream_options.include_usage)
a chunk with ``choices: []`` and the usage, then ``data: [DONE]`` (OpenAI's API reference,
"Completions" — legacy).
"""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from providers.adapters.answers import malformed
from providers.adapters.http_calls import (
    stream_failure,
    stream_transport_error,
    streamed_response,
)
from providers.adapters.openai.answer import finish_reason, parse_usage, read_chunk
from providers.sse import events_of
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


def build_body(request: ChatRequest, target: Target, *, stream: bool) -> dict[str, Any]:
    text = request.text_prompt
    body: dict[str, Any] = {"model": target.upstream_model, "prompt": text.prompt}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # what we bill, whatever the client asked
    optional = {
        "max_tokens": request.max_output_tokens, "temperature": request.temperature, "top_p": request.top_p,
        "stop": request.stop or None, "seed": request.seed, "user": request.user,
        "frequency_penalty": request.frequency_penalty, "presence_penalty": request.presence_penalty,
        "logit_bias": request.logit_bias, "suffix": text.suffix, "echo": text.echo or None,
        "logprobs": text.logprobs, "best_of": text.best_of,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


def first_choice(payload: dict[str, Any], target: Target, *, produced: bool = False) -> dict[str, Any] | None:
    choices = payload.get("choices")
    if not isinstance(choices, list):
        raise malformed("a text_completion object without choices", target, produced=produced)
    choice = next((item for item in choices if isinstance(item, dict) and item.get("index", 0) == 0), None)
    if choice is not None and not isinstance(choice.get("text", ""), str):
        raise malformed("a completion choice whose text is not a string", target, produced=produced)
    return choice


def text_logprobs(choice: dict[str, Any]) -> dict[str, Any] | None:
    logprobs = choice.get("logprobs")
    return logprobs if isinstance(logprobs, dict) else None


def parse_answer(payload: dict[str, Any], target: Target) -> ChatResult:
    choice = first_choice(payload, target)
    if choice is None:
        raise malformed("an answer without a choice", target)
    return ChatResult(
        id=payload.get("id") or f"cmpl-{uuid.uuid4().hex}", content=choice.get("text") or "",
        finish_reason=finish_reason(choice.get("finish_reason")), usage=parse_usage(payload) or Usage(),
        text_logprobs=text_logprobs(choice), upstream_model=payload.get("model") or target.upstream_model,
    )


async def stream_answer(adapter, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
    """``adapter`` (OpenAICompatibleAdapter or a variant) says where the route is, how the key goes
    and how errors read."""
    finished = produced = False
    usage: Usage | None = None
    prepared = adapter.post_json(target, "completions", build_body(request, target, stream=True))
    try:
        async with streamed_response(prepared, target, adapter.error_from_response) as response:
            async for sse in events_of(response):
                if sse.data.startswith("[DONE]"):
                    break
                chunk = read_chunk(sse.data, target, produced=produced)
                if chunk.get("error"):
                    raise adapter.error_from_body(chunk, target, status=None)
                usage = parse_usage(chunk) or usage
                choice = first_choice(chunk, target, produced=produced)
                if choice is None:
                    continue
                if choice.get("text") or text_logprobs(choice):
                    produced = True
                    yield Delta(content=choice.get("text") or None, text_logprobs=text_logprobs(choice))
                if choice.get("finish_reason"):
                    finished = True
                    yield Finish(finish_reason(choice["finish_reason"]))
    except httpx.TransportError as exc:
        raise stream_transport_error(exc, target, produced=produced) from exc
    if not finished:
        raise stream_failure(f"{target.provider} ended the stream before a finish reason.", target, produced=produced)
    if usage is not None:
        yield UsageReport(usage)

