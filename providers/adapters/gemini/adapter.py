"""Google Gemini API (Developer API) wire format: generateContent and its SSE stream.

    POST {base_url}/v1beta/models/{model}:generateContent              one JSON answer
    POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse   ``data: {...}`` lines, no [DONE]
    x-goog-api-key: <key>

GeminiAdapter is the glue; the translation lives by noun:
    gemini_request   IR -> Gemini: contents, systemInstruction, tools, generationConfig, replayed signatures
    gemini_schema    JSON Schema -> Gemini's OpenAPI-subset Schema for function declarations
    gemini_answer    Gemini -> IR: parts, finish reasons, usage, our reasoning_signature; the stream's chunks
    gemini_errors    the error body (or a stream's error lines) -> our error tree
    gemini_images, gemini_audio, gemini_video   the media endpoints of the same API
    gemini_embeddings   batchEmbedContents
"""

from collections.abc import AsyncIterator

import httpx

from providers import errors
from providers.adapters.answers import malformed
from providers.adapters.base import Adapter
from providers.adapters.gemini import audio as gemini_audio
from providers.adapters.gemini import embeddings as gemini_embeddings
from providers.adapters.gemini import images as gemini_images
from providers.adapters.gemini import video as gemini_video
from providers.adapters.gemini.answer import AnswerReader, parse_answer, read_chunks
from providers.adapters.gemini.errors import error_from_response, stream_error
from providers.adapters.gemini.request import build_request
from providers.adapters.http_calls import fetch_json, stream_transport_error, streamed_response
from providers.embedding_types import EmbeddingRequest, EmbeddingResult
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
from providers.types import ChatRequest, ChatResult, Delta, Finish, StreamEvent, Target, UsageReport


class GeminiAdapter(Adapter):
    OPERATIONS = frozenset({"complete", "stream", "generate_images", "edit_images", "speech", "transcribe", "submit_video", "poll_video"})

    wire_format = "gemini"
    SUPPORTED_ARGUMENTS = frozenset({"frequency_penalty", "presence_penalty", "logprobs", "top_logprobs"})

    async def generate_images(self, request: ImageRequest, target: Target) -> ImageResult:
        return await gemini_images.generate_images(request, target)

    async def edit_images(self, request: ImageRequest, target: Target) -> ImageResult:
        return await gemini_images.edit_images(request, target)

    async def complete(self, request: ChatRequest, target: Target) -> ChatResult:
        payload = await fetch_json(build_request(request, target, stream=False), target, error_from_response)
        return parse_answer(payload, target)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        prepared = build_request(request, target, stream=True)
        reader = AnswerReader()
        produced = False
        try:
            async with streamed_response(prepared, target, error_from_response) as response:
                async for chunk in read_chunks(response.aiter_lines()):
                    if chunk.get("error"):
                        raise stream_error(chunk["error"], target, produced=produced)
                    delta = reader.read(chunk)
                    if reader.failed():
                        raise reader.failure(target, produced=produced)
                    if delta is not None:
                        produced = True
                        yield delta
        except httpx.TransportError as exc:
            raise stream_transport_error(exc, target, produced=produced) from exc
        except ValueError as exc:
            raise malformed("a stream event that is not a JSON object", target, produced=produced) from exc
        if reader.finish is None and not reader.blocked:
            raise errors.ProviderStreamBroken(
                f"{target.provider} ended the stream before a finish reason.", provider=target.provider
            )
        signature = reader.signature()
        if signature:
            yield Delta(reasoning_signature=signature)
        yield Finish(reader.finish_reason())
        if reader.usage is not None:
            yield UsageReport(reader.usage)

    async def submit_video(self, request: VideoRequest, target: Target) -> VideoJobState:
        return await gemini_video.submit_video(request, target)

    async def poll_video(self, state: VideoJobState, target: Target) -> VideoJobState:
        return await gemini_video.poll_video(state, target)

    async def speech(self, request: SpeechRequest, target: Target) -> SpeechResult:
        return await gemini_audio.speech(request, target)

    async def transcribe(self, request: TranscriptionRequest, target: Target) -> TranscriptionResult:
        return await gemini_audio.transcribe(request, target)

    def can_embed(self, target: Target) -> bool:
        return True

    async def embed(self, request: EmbeddingRequest, target: Target) -> EmbeddingResult:
        return await gemini_embeddings.embed(request, target)
