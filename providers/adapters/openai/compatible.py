"""OpenAI Chat Completions wire format: OpenAI itself and the compatible family.

One adapter for all of them; a provider's deviations are declared in its ``quirks``
(catalog.yaml or the admin), never a copied module:
- ``max_tokens_field``: "max_tokens" for APIs that predate ``max_completion_tokens``.
- ``no_stream_options``: the API rejects ``stream_options`` (usage then comes unasked or not at all).
- ``auth``: "none" for a local server that takes no key.
- ``reasoning_switch``: how ``reasoning_effort`` is said to a provider that has an on/off switch
  instead: "thinking_type" (``thinking: {type: enabled|disabled}``: Z.AI, Xiaomi, Volcengine),
  "enable_thinking" (top-level ``enable_thinking``: DashScope, ModelScope) or
  "chat_template_kwargs" (``chat_template_kwargs: {enable_thinking}``: vLLM, SGLang, Ollama).
- ``replay_reasoning``: send an assistant turn's ``reasoning_content`` back (DeepSeek, Kimi, MiMo
  require it in multi-turn tool use).
- ``unsupported_arguments``: sampling/output arguments the API refuses (Groq: logprobs,
  top_logprobs, logit_bias); a request setting one is refused before the call
  (providers.arguments), and fallbacks on this provider are skipped.
- ``think_tags``: the model writes its reasoning inside ``<think>...</think>`` in the content
  (MiniMax M2); it is split out into reasoning, also across stream chunks.
Embeddings, rerank and moderations have quirks of their own: openai_embeddings, rerank, openai_moderations.
Answers, whole or streamed, are read in openai_answer.
"""

from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

import httpx

from providers import errors
from providers.adapters import rerank
from providers.adapters.base import Adapter
from providers.adapters.http_calls import (
    fetch_json,
    post_json,
    stream_failure,
    stream_transport_error,
    streamed_response,
)
from providers.adapters.openai import audio as openai_audio
from providers.adapters.openai import embeddings as openai_embeddings
from providers.adapters.openai import images as openai_images
from providers.adapters.openai import moderations as openai_moderations
from providers.adapters.openai import text as openai_text
from providers.adapters.openai import video as openai_video
from providers.adapters.openai.answer import (
    finish_reason,
    parse_completion,
    parse_delta,
    parse_usage,
    read_chunk,
    with_logprobs,
)
from providers.adapters.openai.errors import bearer_auth, error_from_body, error_from_response
from providers.adapters.openai.reasoning import ThinkTagSplitter
from providers.embedding_types import (
    EmbeddingRequest,
    EmbeddingResult,
    ModerationRequest,
    ModerationResult,
    RerankRequest,
    RerankResult,
)
from providers.http import Prepared
from providers.media_types import (
    ImageRequest,
    ImageResult,
    SpeechRequest,
    SpeechResult,
    TranscriptionRequest,
    TranscriptionResult,
    VideoJobState,
    VideoRequest,
)
from providers.sse import events_of
from providers.types import (
    ChatRequest,
    ChatResult,
    Delta,
    Finish,
    ImagePart,
    Message,
    StreamEvent,
    Target,
    Usage,
    UsageReport,
)


class OpenAICompatibleAdapter(Adapter):
    OPERATIONS = frozenset({"complete", "stream", "generate_images", "edit_images", "vary_images", "speech",
                            "transcribe", "translate", "submit_video", "poll_video", "cancel_video"})

    wire_format = "openai_compatible"
    # Every argument as OpenAI names it, but modalities: audio output has no place in the IR.
    SUPPORTED_ARGUMENTS = frozenset({"frequency_penalty", "presence_penalty", "logprobs", "top_logprobs",
                                     "logit_bias", "verbosity", "prediction"})

    def supported_arguments(self, target: Target) -> frozenset[str]:
        return self.SUPPORTED_ARGUMENTS.difference(target.quirks.get("unsupported_arguments") or ())

    async def complete(self, request: ChatRequest, target: Target) -> ChatResult:
        if request.text_prompt is not None:  # a text completion model: its own /completions
            payload = await fetch_json(self.post_json(target, "completions", openai_text.build_body(
                request, target, stream=False)), target, self.error_from_response)
            return openai_text.parse_answer(payload, target)
        payload = await fetch_json(self.build_request(request, target, stream=False), target,
                                   self.error_from_response)
        return parse_completion(payload, target)

    def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        if request.text_prompt is not None:
            return openai_text.stream_answer(self, request, target)
        return self.stream_chat(request, target)

    async def stream_chat(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        finished = produced = False
        usage: Usage | None = None
        prepared = self.build_request(request, target, stream=True)
        try:
            async with streamed_response(prepared, target, self.error_from_response) as response:
                splitter = ThinkTagSplitter() if target.quirks.get("think_tags") else None
                cited = False
                async for sse in events_of(response):
                    if sse.data.startswith("[DONE]"):
                        break
                    chunk = read_chunk(sse.data, target, produced=produced)
                    if chunk.get("error"):
                        raise self.error_from_body(chunk, target, status=None)
                    usage = parse_usage(chunk) or usage
                    if chunk.get("citations") and not cited:  # Perplexity repeats them on every chunk
                        cited = True
                        yield Delta(citations=[str(url) for url in chunk["citations"]])
                    for choice in chunk.get("choices") or ():
                        if choice.get("index", 0) != 0:
                            continue
                        delta = with_logprobs(parse_delta(choice.get("delta") or {}, splitter), choice)
                        if delta is not None:
                            produced = True
                            yield delta
                        if choice.get("finish_reason"):
                            if splitter is not None and splitter.pending:
                                text, thought = splitter.flush()
                                yield Delta(content=text or None, reasoning=thought or None)
                            finished = True
                            yield Finish(finish_reason(choice["finish_reason"]))
        except httpx.TransportError as exc:
            raise stream_transport_error(exc, target, produced=produced) from exc
        if not finished:
            raise stream_failure(f"{target.provider} ended the stream before a finish reason.", target,
                                 produced=produced)
        if usage is not None:
            yield UsageReport(usage)

    # Where a route is, how the key is sent and how errors read: the hooks a variant of this wire
    # format overrides (openai/azure.py: the deployment in the path, an api-version, an api-key
    # header). The media modules build their requests with them too.

    def url_for(self, target: Target, route: str) -> httpx.URL:
        """The URL of an API route ("chat/completions", "images/generations", "audio/speech", ...)."""
        return route_url(target.base_url, route)

    def auth_headers(self, target: Target) -> dict[str, str]:
        """The headers carrying the credential (none for a keyless local server)."""
        return bearer_auth(target)

    def error_from_response(self, status: int, headers: httpx.Headers, body: bytes,
                            target: Target) -> errors.ProviderError:
        """An error response (status, headers, body) as the gateway's own error."""
        return error_from_response(status, headers, body, target)

    def error_from_body(self, payload: dict[str, Any], target: Target, *, status: int | None) -> errors.ProviderError:
        """An error object (the response's body, or a ``data: {"error": ...}`` stream event)."""
        return error_from_body(payload, target, status=status)

    def build_request(self, request: ChatRequest, target: Target, *, stream: bool) -> Prepared:
        return self.post_json(target, "chat/completions", build_body(request, target, stream=stream))

    def post_json(self, target: Target, route: str, body: dict[str, Any]) -> Prepared:
        return post_json(self.url_for(target, route),
                         {"Accept": "application/json", "Content-Type": "application/json", **self.auth_headers(target)},
                         body, target)

    async def generate_images(self, request: ImageRequest, target: Target) -> ImageResult:
        return await openai_images.generate_images(request, target, self)

    async def edit_images(self, request: ImageRequest, target: Target) -> ImageResult:
        return await openai_images.edit_images(request, target, self)

    async def vary_images(self, request: ImageRequest, target: Target) -> ImageResult:
        return await openai_images.vary_images(request, target, self)

    async def submit_video(self, request: VideoRequest, target: Target) -> VideoJobState:
        return await openai_video.submit_video(request, target)

    async def poll_video(self, state: VideoJobState, target: Target) -> VideoJobState:
        return await openai_video.poll_video(state, target)

    def can_cancel_video(self, state: VideoJobState) -> bool:
        return True

    async def cancel_video(self, state: VideoJobState, target: Target) -> None:
        await openai_video.cancel_video(state, target)

    async def speech(self, request: SpeechRequest, target: Target) -> SpeechResult:
        return await openai_audio.speech(request, target, self)

    async def transcribe(self, request: TranscriptionRequest, target: Target) -> TranscriptionResult:
        return await openai_audio.transcribe(request, target, self)

    async def translate(self, request: TranscriptionRequest, target: Target) -> TranscriptionResult:
        return await openai_audio.translate(request, target, self)

    def can_embed(self, target: Target) -> bool:
        return True

    async def embed(self, request: EmbeddingRequest, target: Target) -> EmbeddingResult:
        return await openai_embeddings.embed(request, target, self)

    def can_rerank(self, target: Target) -> bool:
        return rerank.has_rerank(target)

    async def rerank(self, request: RerankRequest, target: Target) -> RerankResult:
        return await rerank.rerank(request, target, self)

    def can_moderate(self, target: Target) -> bool:
        return bool(target.quirks.get("moderations"))

    async def moderate(self, request: ModerationRequest, target: Target) -> ModerationResult:
        return await openai_moderations.moderate(request, target, self)


@lru_cache(maxsize=1024)
def route_url(base_url: str, route: str) -> httpx.URL:
    # Parsed once per provider and route, not per call: URL parsing is a visible share of httpx's cost.
    return httpx.URL(base_url.rstrip("/") + "/" + route)


def encode_message(message: Message, *, replay_reasoning: bool = False) -> dict[str, Any]:
    encoded: dict[str, Any] = {"role": message.role}
    if isinstance(message.content, list):
        encoded["content"] = [
            {"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}}
            if isinstance(part, ImagePart)
            else {"type": "text", "text": part.text}
            for part in message.content
        ]
    else:
        encoded["content"] = message.content
    if message.name:
        encoded["name"] = message.name
    if message.tool_calls:
        encoded["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        encoded["tool_call_id"] = message.tool_call_id
    if replay_reasoning and message.reasoning:
        encoded["reasoning_content"] = message.reasoning
    return encoded


def build_body(request: ChatRequest, target: Target, *, stream: bool) -> dict[str, Any]:
    replay = bool(target.quirks.get("replay_reasoning"))
    body: dict[str, Any] = {
        "model": target.upstream_model,
        "messages": [encode_message(m, replay_reasoning=replay) for m in request.messages],
    }
    if stream:
        body["stream"] = True
        if not target.quirks.get("no_stream_options"):
            # Always ask for usage, whatever the client asked: it is what we bill.
            body["stream_options"] = {"include_usage": True}
    if request.max_output_tokens is not None:
        body[target.quirks.get("max_tokens_field", "max_completion_tokens")] = request.max_output_tokens
    optional = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop or None,
        "seed": request.seed,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "response_format": request.response_format,
        "reasoning_effort": request.reasoning_effort,
        "user": request.user,
        "frequency_penalty": request.frequency_penalty,
        "presence_penalty": request.presence_penalty,
        "logprobs": request.logprobs or None,
        "top_logprobs": request.top_logprobs,
        "logit_bias": request.logit_bias,
        "verbosity": request.verbosity,
        "prediction": request.prediction,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    switch = target.quirks.get("reasoning_switch")
    if switch and request.reasoning_effort is not None:
        thinking = body.pop("reasoning_effort") != "none"
        if switch == "thinking_type":
            body["thinking"] = {"type": "enabled" if thinking else "disabled"}
        elif switch == "enable_thinking":
            body["enable_thinking"] = thinking
        elif switch == "chat_template_kwargs":
            body["chat_template_kwargs"] = {"enable_thinking": thinking}
    return body
