"""Google's audio on the Gemini API: speech from the TTS models and transcription by audio
understanding, both through ``generateContent``. GeminiAdapter's speech and transcribe delegate here.

    POST {base_url}/v1beta/models/{tts-model}:generateContent
        {"contents": [{"role": "user", "parts": [{"text"}]}],
         "generationConfig": {"responseModalities": ["AUDIO"],
                              "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName"}}}}}
        -> candidates[0].content.parts[0].inlineData {"mimeType": "audio/L16;codec=pcm;rate=24000", "data"}
    POST {base_url}/v1beta/models/{model}:generateContent
        {"contents": [{"role": "user", "parts": [{"text": <what to do>}, {"inlineData": {"mimeType", "data"}}]}],
         "generationConfig": {"temperature"?}}
        -> the transcript as text parts
    x-goog-api-key: <key>

- Speech comes back as raw 16-bit little-endian mono PCM at the rate its MIME type names; the
  gateway wraps it in a WAV header (``wav``) or hands it over as it is (``pcm``). Gemini takes
  no speed, and is steered by words, not a parameter: ``instructions`` go before the text, as
  Google's examples do ("Say cheerfully: ...").
- Transcription sends the audio inline with an instruction to transcribe it word for word (the
  language and the client's prompt, a glossary or the previous text, are added to it). Gemini
  counts 32 tokens a second of audio: the audio's duration is read back from the prompt's AUDIO
  tokens (``usageMetadata.promptTokensDetails``) where the answer reports them.
- Both are priced by tokens (usageMetadata, as chat); speech also counts its characters.
Errors are the Gemini API's, mapped by gemini_errors.error_from_response.
"""

import base64
import binascii
import io
import mimetypes
import wave
from decimal import Decimal
from typing import Any

from providers import errors
from providers.adapters.gemini import answer as gemini_answer
from providers.adapters.gemini import errors as gemini_errors
from providers.adapters.gemini.request import post
from providers.adapters.http_calls import fetch_json
from providers.adapters.openai.audio import SPEECH_CONTENT_TYPES
from providers.media_types import (
    SpeechRequest,
    SpeechResult,
    TranscriptionRequest,
    TranscriptionResult,
)
from providers.types import Target, Usage

DEFAULT_PCM_RATE = 24000
AUDIO_TOKENS_PER_SECOND = 32
TRANSCRIBE = ("Transcribe the speech in this audio exactly as it is spoken. Answer with the transcript only: no "
              "introduction, no timestamps, no speaker labels, no commentary.")


async def speech(request: SpeechRequest, target: Target) -> SpeechResult:
    if request.response_format not in ("wav", "pcm"):
        raise errors.UnsupportedFeature(f"{target.upstream_model} speaks wav or pcm, not {request.response_format}.",
                                        provider=target.provider)
    text = request.input
    if request.instructions:
        text = f"{request.instructions.strip().rstrip(':')}: {request.input}"
    config: dict[str, Any] = {"responseModalities": ["AUDIO"]}
    if request.voice:
        config["speechConfig"] = {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": request.voice}}}
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}], "generationConfig": config}
    payload = await fetch_json(post(target, "generateContent", body), target, gemini_errors.error_from_response)
    pcm, rate = spoken_audio(payload, target)
    audio = pcm if request.response_format == "pcm" else wav_of(pcm, rate)
    usage = gemini_answer.parse_usage(payload) or Usage()
    usage.characters = len(request.input)
    return SpeechResult(audio=audio, content_type=SPEECH_CONTENT_TYPES[request.response_format], usage=usage,
                        upstream_model=payload.get("modelVersion") or target.upstream_model)


def spoken_audio(payload: Any, target: Target) -> tuple[bytes, int]:
    """The answer's PCM and its sample rate."""
    candidates = payload.get("candidates") if isinstance(payload, dict) else None
    candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    for part in (candidate.get("content") or {}).get("parts") or ():
        inline = part.get("inlineData") if isinstance(part, dict) else None
        if isinstance(inline, dict) and inline.get("data"):
            try:
                pcm = base64.b64decode(inline["data"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise errors.ProviderUnavailable(f"{target.provider} sent audio that is not base64.",
                                                 provider=target.provider) from exc
            return pcm, pcm_rate(inline.get("mimeType") or "")
    blocked = (payload.get("promptFeedback") or {}).get("blockReason") if isinstance(payload, dict) else None
    if blocked or candidate.get("finishReason") in gemini_answer.FILTERED:
        raise errors.ContentFiltered(f"{target.provider} spoke nothing ({blocked or candidate['finishReason']}). "
                                     "Change the text.", provider=target.provider)
    raise errors.ProviderUnavailable(f"{target.provider} answered without audio.", provider=target.provider)


def pcm_rate(mime_type: str) -> int:
    """The sample rate in ``audio/L16;codec=pcm;rate=24000``."""
    for parameter in mime_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name == "rate" and value.isdigit():
            return int(value)
    return DEFAULT_PCM_RATE


def wav_of(pcm: bytes, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()


def instruction_for(request: TranscriptionRequest) -> str:
    words = [TRANSCRIBE]
    if request.language:
        words.append(f"The speech is in the language with ISO 639-1 code '{request.language}'.")
    if request.prompt:
        words.append(f"Context (spellings, names, the text before this audio): {request.prompt}")
    return " ".join(words)


def mime_type_of(request: TranscriptionRequest) -> str:
    declared = request.file.content_type
    if declared and declared != "application/octet-stream":
        return declared
    return mimetypes.guess_type(request.file.filename or "")[0] or "audio/wav"


async def transcribe(request: TranscriptionRequest, target: Target) -> TranscriptionResult:
    audio = base64.b64encode(request.file.content or b"").decode()
    parts = [{"text": instruction_for(request)}, {"inlineData": {"mimeType": mime_type_of(request), "data": audio}}]
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}]}
    if request.temperature is not None:
        body["generationConfig"] = {"temperature": request.temperature}
    payload = await fetch_json(post(target, "generateContent", body), target, gemini_errors.error_from_response)
    answer = gemini_answer.parse_answer(payload, target)
    if answer.finish_reason == "content_filter":
        raise errors.ContentFiltered(f"{target.provider} refused to transcribe this audio for its content policy.",
                                     provider=target.provider)
    duration = audio_seconds(payload)
    usage = answer.usage
    if duration is not None:
        usage.audio_seconds = duration
    return TranscriptionResult(text=(answer.content or "").strip(), usage=usage, language=request.language,
                               duration_seconds=duration, upstream_model=answer.upstream_model)


def audio_seconds(payload: dict[str, Any]) -> Decimal | None:
    """The audio's duration from the prompt's AUDIO tokens, if the answer reports them."""
    details = (payload.get("usageMetadata") or {}).get("promptTokensDetails") or ()
    tokens = sum(int(d.get("tokenCount") or 0) for d in details if isinstance(d, dict) and d.get("modality") == "AUDIO")
    return Decimal(tokens) / AUDIO_TOKENS_PER_SECOND if tokens else None
