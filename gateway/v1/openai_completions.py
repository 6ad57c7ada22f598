"""OpenAI's legacy Completions as a client protocol: decode a request into a ChatRequest and
encode the answer as the text_completion object, whole or as its stream of chunks.

    {"model", "prompt": "text" | [token ids] | a list of one of either, "max_tokens"? (16, the legacy
     default), "temperature"?, "top_p"?, "stop"?, "n"?: 1, "seed"?, "user"?, "presence_penalty"?,
     "frequency_penalty"?, "logit_bias"?, "suffix"?, "echo"?, "logprobs"? (0-5), "best_of"?,
     "stream"?, "stream_options"?: {"include_usage"}, "fallback_models"? | "models"?}
    -> {"id": "cmpl-...", "object": "text_completion", "created", "model",
        "choices": [{"text", "index": 0, "logprobs", "finish_reason"}], "usage"}

A stream is data-only SSE of the same object, a piece of the text per chunk, the finish reason on
a last choice chunk, then (stream_options.include_usage) a chunk with ``choices: []`` and the usage
(every earlier chunk then carries ``usage: null``), then ``data: [DONE]``.

A text completion model (capability "completion") is sent the request as it came (its TextPrompt:
token ids, suffix, echo, logprobs, best_of) at its provider's /completions. For a chat model the
prompt becomes one user message (as_chat), and what a chat model cannot honour is refused with a
400 naming the field and why (UNTRANSLATABLE), unless sent with its neutral value (echo false,
suffix empty, best_of 1, logprobs null): a request carrying one is then exactly the request
without it.
"""

import time
from typing import Any

from gateway.v1 import sse
from gateway.v1.chat_arguments import decode_logit_bias
from gateway.v1.errors import GatewayError, bad_request, error_body
from gateway.v1.json_body import decoder, expect, int_at_least, number_in, positive_int
from gateway.v1.openai_chat import (
    decode_fallbacks,
    decode_stop,
    decode_streaming,
    model_of,
    refuse_unknown,
)
from gateway.v1.openai_chat_answer import encode_usage
from providers.types import ChatRequest, ChatResult, Delta, Message, TextPrompt, Usage

SUPPORTED = {"model", "prompt", "max_tokens", "temperature", "top_p", "stop", "n", "stream", "stream_options",
             "seed", "user", "presence_penalty", "frequency_penalty", "logit_bias", "fallback_models", "models",
             "echo", "suffix", "best_of", "logprobs"}
MAX_LOGPROBS = 5  # the legacy API's most alternatives per token
MAX_BEST_OF = 20
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
    "max_tokens": "0 scores the prompt without generating (with echo and logprobs), which only a text completion "
                  "model does; send 1 or more",
}


@decoder
def decode(payload: dict[str, Any]) -> ChatRequest:
    """The request, with its TextPrompt (what a native completion model is sent); for a chat model,
    as_chat() then makes it a chat request."""
    refuse_unknown(payload, SUPPORTED)
    model = model_of(payload)
    prompt = decode_prompt(payload.get("prompt"))
    stream, include_usage = decode_streaming(payload)
    if positive_int(payload, "n") not in (None, 1):
        raise bad_request("'n' must be 1: the gateway returns one choice per request.", param="n")
    seed, user = payload.get("seed"), payload.get("user")
    if seed is not None:
        expect(seed, int, "seed", "an integer")
    if user is not None:
        expect(user, str, "user", "a string")
    max_tokens = int_at_least(payload, "max_tokens", 0)  # 0: score the prompt (echo with logprobs)
    text_prompt = decode_text_options(payload, prompt, stream=stream)
    return ChatRequest(
        model=model,
        messages=[Message(role="user", content=prompt_as_text(text_prompt))],
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
        text_prompt=text_prompt,
    )


def decode_text_options(payload: dict[str, Any], prompt: str | list[int], *, stream: bool) -> TextPrompt:
    echo, suffix, logprobs = payload.get("echo"), payload.get("suffix"), payload.get("logprobs")
    if echo is not None:
        expect(echo, bool, "echo", "true or false")
    if suffix is not None:
        expect(suffix, str, "suffix", "a string")
    if logprobs is not None and (type(logprobs) is not int or not 0 <= logprobs <= MAX_LOGPROBS):
        raise bad_request(f"'logprobs' must be an integer from 0 to {MAX_LOGPROBS}: the most likely tokens to list "
                          "beside each one chosen.", param="logprobs")
    best_of = positive_int(payload, "best_of")
    if best_of is not None and best_of > MAX_BEST_OF:
        raise bad_request(f"'best_of' must be at most {MAX_BEST_OF}.", param="best_of")
    if stream and best_of not in (None, 1):
        raise bad_request("'best_of' cannot be streamed: the best candidate is known only once all are whole. "
                          "Leave out stream, or best_of.", param="best_of")
    return TextPrompt(prompt=prompt, suffix=suffix or None, echo=bool(echo), logprobs=logprobs,
                      best_of=best_of if best_of not in (None, 1) else None)


def as_chat(chat: ChatRequest) -> None:
    """A completion for a chat model: the prompt stays as the one user message, and what a chat
    model cannot honour is refused with a 400 (UNTRANSLATABLE)."""
    text = chat.text_prompt
    if not isinstance(text.prompt, str):
        raise bad_request(f"'prompt' is token ids: token arrays cannot be translated to chat, and '{chat.model}' is "
                          "a chat model. Send the prompt as text.", param="prompt", code="invalid_type")
    asked = {"echo": text.echo, "suffix": bool(text.suffix), "best_of": text.best_of is not None,
             "logprobs": text.logprobs is not None, "max_tokens": chat.max_output_tokens == 0}
    for name, is_asked in asked.items():
        if is_asked:
            raise bad_request(f"'{name}' cannot be honoured: {UNTRANSLATABLE[name]}.", param=name,
                              code="unsupported_argument")
    chat.text_prompt = None


def decode_prompt(value: Any) -> str | list[int]:
    """One prompt: a string, token ids, or a list of one of either."""
    if value is None:
        raise bad_request("'prompt' is required: the text to complete.", param="prompt",
                          code="missing_required_parameter")
    if isinstance(value, list) and value and all(isinstance(item, (str, list)) for item in value):
        if len(value) > 1:
            raise bad_request(f"'prompt' has {len(value)} prompts; the gateway completes one per request. Send each "
                              "in a request of its own.", param="prompt")
        value = value[0]
    if isinstance(value, list):
        if not value or not all(type(item) is int and item >= 0 for item in value):
            raise bad_request("'prompt' must be a string, or a list of token ids (non-negative integers).",
                              param="prompt", code="invalid_type")
        return value
    expect(value, str, "prompt", "a string or a list of token ids")
    if not value:
        raise bad_request("'prompt' is empty: send the text to complete.", param="prompt")
    return value


def prompt_as_text(text: TextPrompt) -> str:
    """The prompt as the user message (what the reservation is sized from, and a chat model's
    prompt): token ids as digits, at least one byte per token, so the size bound holds."""
    prompt = text.prompt if isinstance(text.prompt, str) else " ".join(map(str, text.prompt))
    return prompt + (text.suffix or "")


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
        "choices": [{"text": result.content or "", "index": 0, "logprobs": result.text_logprobs,
                     "finish_reason": finish_reason(result.finish_reason)}],
        "usage": encode_usage(result.usage),
    }


class TextCompletionStream:
    """Legacy completion chunks as a StreamEncoder (gateway.v1.answers): the same id, created and
    model on every chunk, which is a text_completion object like the whole answer."""

    def __init__(self, *, completion_id: str, model: str, include_usage: bool):
        self.head = {"id": completion_id, "object": "text_completion", "created": int(time.time()), "model": model}
        self.include_usage = include_usage

    def _chunk(self, text: str, reason: str | None, logprobs: dict[str, Any] | None = None) -> bytes:
        chunk: dict[str, Any] = {**self.head, "choices": [{"text": text, "index": 0, "logprobs": logprobs,
                                                            "finish_reason": reason}]}
        if self.include_usage:
            chunk["usage"] = None
        return sse.event(chunk)

    def opening(self) -> bytes:
        return b""  # no role chunk: the legacy stream starts with text

    def delta(self, delta: Delta) -> bytes:
        if not delta.content and not delta.text_logprobs:
            return b""
        return self._chunk(delta.content or "", None, delta.text_logprobs)

    def finish(self, reason: str) -> bytes:
        return self._chunk("", finish_reason(reason))

    def closing(self, usage: Usage) -> bytes:
        return sse.event({**self.head, "choices": [], "usage": encode_usage(usage)}) if self.include_usage else b""

    def done(self) -> bytes:
        return sse.DONE

    def failure(self, error: GatewayError) -> bytes:
        # As in chat: the SDK raises APIError on a data event with an "error" key.
        return sse.event(error_body(error.message, type=error.type, code=error.code))
