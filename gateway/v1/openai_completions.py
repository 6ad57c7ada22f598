"""OpenAI's legacy Completions as a client protocol, translated to chat: decode a request into a
ChatRequest (the prompt as one user message) and encode the chat answer as the text_completion
object, whole or as its stream of chunks.

    {"model", "prompt": "text" | ["text"], "max_tokens"? (16, the legacy default), "temperature"?,
     "top_p"?, "stop"?, "n"?: 1, "seed"?, "user"?, "presence_penalty"?, "frequency_penalty"?,
     "logit_bias"?, "stream"?, "stream_options"?: {"include_usage"}, "fallback_models"? | "models"?}
    -> {"id": "cmpl-...", "object": "text_completion", "created", "model",
        "choices": [{"text", "index": 0, "logprobs": null, "finish_reason"}], "usage"}

A stream is data-only SSE of the same object, a piece of the text per chunk, the finish reason on
a last choice chunk, then (stream_options.include_usage) a chunk with ``choices: []`` and the usage
(every earlier chunk then carries ``usage: null``), then ``data: [DONE]``.

What a chat model cannot honour is refused with a 400 naming the field and why (UNTRANSLATABLE),
unless sent with its neutral value (echo false, suffix empty, best_of 1, logprobs null): a
request carrying one is then exactly the request without it.
"""

import time
from typing import Any

from gateway.v1 import sse
from gateway.v1.chat_arguments import decode_logit_bias
from gateway.v1.errors import GatewayError, bad_request, error_body
from gateway.v1.json_body import decoder, expect, number_in, positive_int
from gateway.v1.openai_chat import (
    decode_fallbacks,
    decode_stop,
    decode_streaming,
    model_of,
    refuse_unknown,
)
from gateway.v1.openai_chat_answer import encode_usage
from providers.types import ChatRequest, ChatResult, Delta, Message, Usage

SUPPORTED = {"model", "prompt", "max_tokens", "temperature", "top_p", "stop", "n", "stream", "stream_options",
             "seed", "user", "presence_penalty", "frequency_penalty", "logit_bias", "fallback_models", "models",
             "echo", "suffix", "best_of", "logprobs"}
LEGACY_MAX_TOKENS = 16  # the legacy API's default when max_tokens is absent (chat's is the model's most)
FINISH_REASONS = ("stop", "length", "content_filter")  # all a text_completion choice may end with
# Why each cannot be honoured when the prompt reaches the model as a chat message.
UNTRANSLATABLE = {
    "echo": "the prompt reaches the model as a chat message, so its answer cannot start with the prompt's own "
            "tokens; leave it out and prepend the prompt yourself",
    "suffix": "inserting text before a suffix needs a model's fill-in-the-middle mode, which chat does not "
              "offer; leave it out",
    "best_of": "picking the best of several completions by log probability is the legacy endpoint's own "
               "server-side sampling, which chat does not offer; send best_of 1 (or leave it out)",
    "logprobs": "the legacy token logprobs (tokens, token_logprobs, top_logprobs by token, text_offset) are not "
                "translated from chat; leave it out, or use /v1/chat/completions with logprobs: true",
}


@decoder
def decode(payload: dict[str, Any]) -> ChatRequest:
    refuse_unknown(payload, SUPPORTED)
    model = model_of(payload)
    refuse_untranslatable(payload)
    prompt = decode_prompt(payload.get("prompt"))
    stream, include_usage = decode_streaming(payload)
    if positive_int(payload, "n") not in (None, 1):
        raise bad_request("'n' must be 1: the gateway returns one choice per request.", param="n")
    seed = payload.get("seed")
    if seed is not None:
        expect(seed, int, "seed", "an integer")
    user = payload.get("user")
    if user is not None:
        expect(user, str, "user", "a string")
    max_tokens = positive_int(payload, "max_tokens")
    return ChatRequest(
        model=model,
        messages=[Message(role="user", content=prompt)],
        stream=stream,
        include_usage=include_usage,
        max_output_tokens=LEGACY_MAX_TOKENS if max_tokens is None else max_tokens,
        temperature=number_in(payload, "temperature", 0, 2),
        top_p=number_in(payload, "top_p", 0, 1),
        stop=decode_stop(payload.get("stop")),
        seed=seed,
        user=user,
        fallback_models=decode_fallbacks(payload, model),
        frequency_penalty=number_in(payload, "frequency_penalty", -2, 2) or None,
        presence_penalty=number_in(payload, "presence_penalty", -2, 2) or None,
        logit_bias=decode_logit_bias(payload.get("logit_bias")),
    )


def refuse_untranslatable(payload: dict[str, Any]) -> None:
    """A 400 for each UNTRANSLATABLE argument sent with a value that asks for it."""
    echo, suffix, logprobs = payload.get("echo"), payload.get("suffix"), payload.get("logprobs")
    if echo is not None:
        expect(echo, bool, "echo", "true or false")
    if suffix is not None:
        expect(suffix, str, "suffix", "a string")
    best_of = positive_int(payload, "best_of")
    asked = {"echo": bool(echo), "suffix": bool(suffix), "best_of": best_of not in (None, 1),
             "logprobs": logprobs is not None}
    for name, is_asked in asked.items():
        if is_asked:
            raise bad_request(f"'{name}' cannot be honoured: {UNTRANSLATABLE[name]}.", param=name,
                              code="unsupported_argument")


def decode_prompt(value: Any) -> str:
    """One prompt, as text: a string, or a list of one string."""
    if value is None:
        raise bad_request("'prompt' is required: the text to complete.", param="prompt",
                          code="missing_required_parameter")
    if isinstance(value, list):
        if value and not all(isinstance(item, str) for item in value):
            raise bad_request("'prompt' must be a string (or a list of one string): token arrays cannot be "
                              "translated to chat. Send the prompt as text.", param="prompt", code="invalid_type")
        if len(value) > 1:
            raise bad_request(f"'prompt' has {len(value)} prompts; the gateway completes one per request. Send each "
                              "in a request of its own.", param="prompt")
        value = value[0] if value else ""
    expect(value, str, "prompt", "a string")
    if not value:
        raise bad_request("'prompt' is empty: send the text to complete.", param="prompt")
    return value


def finish_reason(reason: str | None) -> str:
    """A chat finish reason as a text_completion's: what it has no word for (tool_calls) is a stop."""
    return reason if reason in FINISH_REASONS else "stop"


def encode_completion(result: ChatResult, *, completion_id: str, model: str) -> dict[str, Any]:
    """The text_completion object of a whole answer (its reasoning, if any, is not part of it)."""
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"text": result.content or "", "index": 0, "logprobs": None,
                     "finish_reason": finish_reason(result.finish_reason)}],
        "usage": encode_usage(result.usage),
    }


class TextCompletionStream:
    """Legacy completion chunks as a StreamEncoder (gateway.v1.answers): the same id, created and
    model on every chunk, which is a text_completion object like the whole answer."""

    def __init__(self, *, completion_id: str, model: str, include_usage: bool):
        self.head = {"id": completion_id, "object": "text_completion", "created": int(time.time()), "model": model}
        self.include_usage = include_usage

    def _chunk(self, text: str, reason: str | None) -> bytes:
        chunk: dict[str, Any] = {**self.head, "choices": [{"text": text, "index": 0, "logprobs": None,
                                                            "finish_reason": reason}]}
        if self.include_usage:
            chunk["usage"] = None
        return sse.event(chunk)

    def opening(self) -> bytes:
        return b""  # no role chunk: the legacy stream starts with text

    def delta(self, delta: Delta) -> bytes:
        return self._chunk(delta.content, None) if delta.content else b""

    def finish(self, reason: str) -> bytes:
        return self._chunk("", finish_reason(reason))

    def closing(self, usage: Usage) -> bytes:
        return sse.event({**self.head, "choices": [], "usage": encode_usage(usage)}) if self.include_usage else b""

    def done(self) -> bytes:
        return sse.DONE

    def failure(self, error: GatewayError) -> bytes:
        # As in chat: the SDK raises APIError on a data event with an "error" key.
        return sse.event(error_body(error.message, type=error.type, code=error.code))
