"""OpenAI's Audio API: speech (tts-1, tts-1-hd, gpt-4o-mini-tts), transcription (whisper-1,
gpt-4o-transcribe, gpt-4o-mini-transcribe) and translation into English (whisper-1), and the
compatible providers serving the same routes. OpenAICompatibleAdapter's speech, transcribe and
translate delegate here.

    POST {base_url}/audio/speech           JSON {model, input, voice, response_format, speed,
                                           instructions, stream_format?} -> the audio's bytes
    POST {base_url}/audio/transcriptions   multipart/form-data: file, model, language, prompt,
                                           response_format, temperature, timestamp_granularities[]
    POST {base_url}/audio/translations     multipart/form-data: file, model, prompt, response_format,
                                           temperature (no language: the text is always English)
    Authorization: Bearer <key>

URLs, auth headers and error mapping are the calling adapter's (``api``): Azure OpenAI addresses
the same routes per deployment, with an api-version and an ``api-key`` header (openai/azure.py).

Speech:
- tts-1 and tts-1-hd answer the audio itself and are priced per character: usage.characters is the
  input's length.
- GPT speech models (gpt-4o-mini-tts, priced by tokens) report their usage only in the SSE form, so
  they are asked for ``stream_format: sse``: ``speech.audio.delta`` events carry base64 pieces of
  the audio (in the format asked), ``speech.audio.done`` its ``usage {input_tokens, output_tokens}``.
  An upstream that answers plain audio instead is read as such, without tokens.
- The content type is the format's (mp3 -> audio/mpeg, ...), whatever label the upstream sends.
Transcription:
- Whisper-class models are asked for ``verbose_json`` whatever the client wants: its duration is
  what they are billed by, and its segments let the gateway write text, srt and vtt itself.
- GPT transcription models take only json and text; they are asked for json, whose ``usage`` says
  the tokens they are billed by (or ``{"type": "duration", "seconds"}``).
Translation is asked and read as a transcription is; its answers carry no ``usage`` (OpenAI's
Translation is ``{text}``, TranslationVerbose ``{language: "english", duration, text, segments}``),
so a translation is billed the ``duration`` verbose_json reports.
Errors are the Chat Completions envelope, mapped by the adapter's error_from_response.
"""

import base64
import binascii
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx

from providers import errors
from providers.adapters.http_calls import (
    fetch_json,
    streamed_response,
    timeout_for,
    transport_error,
)
from providers.media_types import (
    SpeechRequest,
    SpeechResult,
    TranscriptionRequest,
    TranscriptionResult,
)
from providers.sse import events_of
from providers.types import Target, Usage

if TYPE_CHECKING:
    from providers.adapters.openai.compatible import OpenAICompatibleAdapter

SPEECH_CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
                        "wav": "audio/wav", "pcm": "audio/pcm"}


def is_gpt_model(model: str) -> bool:
    """gpt-4o-mini-tts, gpt-4o-transcribe and their kin: token-priced, with their own answer shapes."""
    return model.startswith("gpt-")


def speech_body(request: SpeechRequest, target: Target) -> dict[str, Any]:
    body: dict[str, Any] = {"model": target.upstream_model, "input": request.input,
                            "response_format": request.response_format}
    if request.voice:
        body["voice"] = request.voice
    if request.speed is not None:
        body["speed"] = request.speed
    if request.instructions:
        body["instructions"] = request.instructions
    if is_gpt_model(target.upstream_model):
        body["stream_format"] = "sse"
    body.update(request.extra)
    return body


async def speech(request: SpeechRequest, target: Target, api: "OpenAICompatibleAdapter") -> SpeechResult:
    prepared = httpx.Request(
        "POST", api.url_for(target, "audio/speech"),
        headers={"Accept": "application/octet-stream", **api.auth_headers(target), "Content-Type": "application/json"},
        content=json.dumps(speech_body(request, target)).encode(),
        extensions={"timeout": timeout_for(target).as_dict()},
    )
    content_type = SPEECH_CONTENT_TYPES.get(request.response_format, "application/octet-stream")
    usage = Usage(characters=len(request.input))
    async with streamed_response(prepared, target, api.error_from_response) as response:
        try:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                audio = await read_speech_events(response, usage, target, api)
            else:
                audio = await response.aread()
        except httpx.TransportError as exc:
            raise transport_error(exc, target) from exc
    if not audio:
        raise errors.ProviderUnavailable(f"{target.provider} answered without audio.", provider=target.provider)
    return SpeechResult(audio=audio, content_type=content_type, usage=usage, upstream_model=target.upstream_model)


async def read_speech_events(response: httpx.Response, usage: Usage, target: Target,
                             api: "OpenAICompatibleAdapter") -> bytes:
    """The audio of a ``stream_format: sse`` answer; its usage goes into ``usage``."""
    pieces, done = [], False
    async for sse in events_of(response):
        try:
            event = json.loads(sse.data)
            if event.get("error"):
                raise api.error_from_body(event, target, status=None)
            if event.get("type") == "speech.audio.delta":
                pieces.append(base64.b64decode(event.get("audio") or "", validate=True))
            elif event.get("type") == "speech.audio.done":
                reported = event.get("usage") or {}
                usage.input_tokens = int(reported.get("input_tokens") or 0)
                usage.output_tokens = int(reported.get("output_tokens") or 0)
                done = True
        except (ValueError, binascii.Error, AttributeError) as exc:
            raise errors.ProviderUnavailable(f"{target.provider} sent a speech event that is not valid.",
                                             provider=target.provider) from exc
    if not done:
        raise errors.ProviderUnavailable(f"{target.provider} ended the speech before it was done.",
                                         provider=target.provider)
    return b"".join(pieces)


def transcription_fields(request: TranscriptionRequest, target: Target) -> dict[str, Any]:
    fields: dict[str, Any] = {"model": target.upstream_model,
                              "response_format": "json" if is_gpt_model(target.upstream_model) else "verbose_json"}
    if request.language:
        fields["language"] = request.language
    if request.prompt:
        fields["prompt"] = request.prompt
    if request.temperature is not None:
        fields["temperature"] = str(request.temperature)
    if request.timestamp_granularities:
        fields["timestamp_granularities[]"] = list(request.timestamp_granularities)
    return fields


async def transcribe(request: TranscriptionRequest, target: Target,
                     api: "OpenAICompatibleAdapter") -> TranscriptionResult:
    return await send_audio(request, target, api, "audio/transcriptions")


async def translate(request: TranscriptionRequest, target: Target,
                    api: "OpenAICompatibleAdapter") -> TranscriptionResult:
    return await send_audio(request, target, api, "audio/translations")


async def send_audio(request: TranscriptionRequest, target: Target, api: "OpenAICompatibleAdapter",
                     route: str) -> TranscriptionResult:
    """The audio and its fields posted as multipart to ``route``; the text it answers."""
    file = request.file
    upload = (file.filename or "audio", file.content or b"", file.content_type)
    prepared = httpx.Request(
        "POST", api.url_for(target, route),
        headers={"Accept": "application/json", **api.auth_headers(target)},
        data=transcription_fields(request, target), files={"file": upload},
        extensions={"timeout": timeout_for(target).as_dict()},
    )
    return parse_transcription(await fetch_json(prepared, target, api.error_from_response), target)


def parse_transcription(payload: Any, target: Target) -> TranscriptionResult:
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str):
        raise errors.ProviderUnavailable(f"{target.provider} answered without a transcript.", provider=target.provider)
    usage = Usage()
    duration = seconds_of(payload.get("duration"))
    billed = duration
    reported = payload.get("usage")
    if isinstance(reported, dict) and reported.get("type") == "tokens":
        usage.input_tokens = int(reported.get("input_tokens") or 0)
        usage.output_tokens = int(reported.get("output_tokens") or 0)
    elif isinstance(reported, dict) and reported.get("type") == "duration":
        billed = seconds_of(reported.get("seconds")) or duration  # what the provider bills, rounded its way
    if billed is not None:
        usage.audio_seconds = billed
    return TranscriptionResult(
        text=text, usage=usage, language=payload.get("language"), duration_seconds=duration,
        segments=[s for s in payload.get("segments") or () if isinstance(s, dict)],
        words=[w for w in payload.get("words") or () if isinstance(w, dict)], upstream_model=target.upstream_model,
    )


def seconds_of(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return Decimal(str(value))
