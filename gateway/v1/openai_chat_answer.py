"""An answer in OpenAI's Chat Completions shape: the chat.completion object (encode_completion)
and its stream of chunks (ChunkEncoder, sent by OpenAIStream), from the canonical result and
events (providers.types). The gateway's own tools, when they ran, are shown in the text
(gateway.v1.tool_activity).
"""

import time
from typing import Any

from gateway.v1 import sse
from gateway.v1.errors import GatewayError, error_body
from gateway.v1.tool_activity import ActivityCounter, weave
from providers.types import ChatResult, Delta, ToolRun, UrlCitation, Usage

LEGACY_FINISH = {"tool_calls": "function_call"}  # what an answer to the deprecated functions ends with


def encode_usage(usage: Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": usage.cached_tokens}
    if usage.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens  # ours: OpenAI has no cache writes
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def encode_annotations(citations: list[UrlCitation]) -> list[dict[str, Any]]:
    """Web search citations, as OpenAI's search models annotate their answers."""
    return [{"type": "url_citation", "url_citation": {"start_index": citation.start_index,
                                                      "end_index": citation.end_index,
                                                      "title": citation.title, "url": citation.url}}
            for citation in citations]


def image_parts(urls: list[str]) -> list[dict[str, Any]]:
    return [{"type": "image_url", "image_url": {"url": url}} for url in urls]


def encode_logprobs(logprobs: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """A choice's ``logprobs``: null unless the client asked and the provider returned them."""
    return None if logprobs is None else {"content": logprobs, "refusal": None}


def encode_completion(result: ChatResult, *, completion_id: str, model: str, legacy_functions: bool = False,
                      tool_runs: list[ToolRun] = ()) -> dict[str, Any]:
    """The chat.completion object. ``legacy_functions``: the client asked with the deprecated
    functions, and gets its first call as ``function_call`` (finish reason "function_call").
    ``tool_runs``: the gateway's tools that ran for it, shown in the text."""
    content: str | list[dict[str, Any]] | None = result.content
    annotations = result.annotations
    if tool_runs:
        content, annotations = weave(result.content or "", annotations, list(tool_runs))
    if result.images:
        # Models that draw (Gemini image models) answer with content parts: text, then images
        # as data: URLs, the shape clients already send images in.
        content = ([{"type": "text", "text": result.content}] if result.content else []) + image_parts(result.images)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None,
                               "annotations": encode_annotations(annotations)}
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    if result.reasoning_signature:
        message["reasoning_signature"] = result.reasoning_signature
    finish_reason = result.finish_reason
    if result.tool_calls and legacy_functions:
        call = result.tool_calls[0]
        message["function_call"] = {"name": call.name, "arguments": call.arguments}
        finish_reason = LEGACY_FINISH.get(finish_reason, finish_reason)
    elif result.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in result.tool_calls
        ]
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": encode_logprobs(result.logprobs),
                     "finish_reason": finish_reason}],
        "usage": encode_usage(result.usage),
    }
    if result.citations:
        body["citations"] = result.citations  # as Perplexity answers them
    return body


class ChunkEncoder:
    """Builds the chunks of one stream: same id, created and model on every chunk; ``usage``
    null on each until the final usage chunk when the client asked for it."""

    def __init__(self, *, completion_id: str, model: str, include_usage: bool, legacy_functions: bool = False):
        self.head = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model}
        self.include_usage = include_usage
        self.legacy_functions = legacy_functions  # the first call as delta.function_call (encode_completion)
        self.activity = ActivityCounter()  # the gateway's tools, shown in the text

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None,
               logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        chunk = {**self.head, "choices": [{"index": 0, "delta": delta, "logprobs": encode_logprobs(logprobs),
                                           "finish_reason": finish_reason}]}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def role(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""}, None)

    def delta(self, delta: Delta) -> dict[str, Any] | None:
        """The delta's chunk; None for a gateway tool starting (it shows once done)."""
        if delta.tool_run is not None:
            shown = self.activity.block(delta.tool_run)
            if shown is None:
                return None
            text, citations = shown
            return self._chunk({"content": text, **({"annotations": encode_annotations(citations)} if citations
                                                    else {})}, None)
        out: dict[str, Any] = {}
        if delta.content is not None:
            out["content"] = delta.content
            self.activity.said(delta.content)
        if delta.reasoning is not None:
            out["reasoning_content"] = delta.reasoning
        if delta.reasoning_signature is not None:
            out["reasoning_signature"] = delta.reasoning_signature
        if delta.images:
            out["images"] = image_parts(delta.images)  # beside content, which stays text in a stream
        if delta.citations:
            out["citations"] = delta.citations
        if delta.annotations:
            out["annotations"] = encode_annotations(self.activity.shown(delta.annotations))
        calls = [{**({"name": call.name} if call.name else {}), "arguments": call.arguments}
                 for call in delta.tool_calls or () if call.index == 0 or not self.legacy_functions]
        if calls and self.legacy_functions:
            out["function_call"] = calls[0]
        elif calls:
            out["tool_calls"] = [
                {"index": call.index, **({"id": call.id, "type": "function"} if call.id else {}), "function": function}
                for call, function in zip(delta.tool_calls, calls, strict=True)
            ]
        return self._chunk(out, None, delta.logprobs)

    def finish(self, reason: str) -> dict[str, Any]:
        return self._chunk({}, LEGACY_FINISH.get(reason, reason) if self.legacy_functions else reason)

    def usage(self, usage: Usage) -> dict[str, Any]:
        return {**self.head, "choices": [], "usage": encode_usage(usage)}


class OpenAIStream:
    """Chat Completions chunks as a StreamEncoder."""

    def __init__(self, encoder: ChunkEncoder):
        self.encoder = encoder

    def opening(self) -> bytes:
        return sse.event(self.encoder.role())

    def delta(self, delta: Delta) -> bytes:
        chunk = self.encoder.delta(delta)
        return b"" if chunk is None else sse.event(chunk)

    def finish(self, reason: str) -> bytes:
        return sse.event(self.encoder.finish(reason))

    def closing(self, usage: Usage) -> bytes:
        return sse.event(self.encoder.usage(usage)) if self.encoder.include_usage else b""

    def done(self) -> bytes:
        return sse.DONE

    def failure(self, error: GatewayError) -> bytes:
        # The SDK raises APIError on a data event with an "error" key: the client learns the
        # answer is incomplete instead of seeing a clean finish.
        return sse.event(error_body(error.message, type=error.type, code=error.code))
