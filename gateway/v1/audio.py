"""POST /v1/audio/speech (and /v1/audio/generation, the same) and POST /v1/audio/transcriptions:
OpenAI's Audio API for every speech and transcription model.

speech          key -> JSON -> model -> plan -> input, voice, format, speed, instructions against
                the model's media_options (400 listing the allowed values) -> admit_media (its
                characters, and for token-priced models the most tokens they can become) -> router
                -> the audio's bytes with the format's content type -> settle the characters spoken
                and the tokens the provider reports.
transcriptions  key -> multipart (file, model, language, prompt, response_format, temperature,
                timestamp_granularities[]) -> model -> plan -> options -> the audio's duration
                -> admit_media (seconds of audio; tokens for token-priced models) -> router ->
                json | text | srt | vtt | verbose_json (gateway.v1.transcripts) -> settle the
                seconds heard and the tokens.
POST /v1/audio/translations (audio_translations.py) is a transcription into English, on the
same admission, billing and answer.

The duration reserved for a transcription is read from the upload's WAV header (the ``wave``
module). Other formats are not decoded: the reservation assumes the file holds as much audio as
its size allows at MIN_BYTES_PER_SECOND (8 kbit/s, below what speech codecs are used at), an
upper bound that only the provider's answer replaces. Settled seconds are the ones the provider
bills (whisper's duration), else the WAV's, else (Gemini) its audio tokens at 32 a second, else
that bound. A token-priced model whose provider reports no tokens is settled at the tokens
reserved, and the record says the usage was estimated.

media_options of audio models (gateway.v1.media lists the shared ones):
    voices, default_voice        speech voices; the default when the client names none
    formats, default_format      speech: mp3 opus aac flac wav pcm; transcription: json text srt
                                 vtt verbose_json
    speed_range [min, max]       speech speeds taken (absent: the model takes none)
    instructions: true           the model takes instructions (how to speak)
    timestamps: true             the model answers timestamp_granularities (whisper)
    translations: true           the model translates into English (/v1/audio/translations: whisper)
    max_input_chars              the longest speech input (4096 when not declared)
    output_tokens_per_character  token-priced speech: the most audio tokens a character becomes at
                                 speed 1 (slower speech, proportionally more), for the reservation
    input_tokens_per_second, output_tokens_per_second
                                 token-priced transcription: the most tokens a second of audio is,
                                 heard and written, for the reservation
"""

import io
import math
import re
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any, TypeVar

from django.http import HttpResponse

from billing import entitlements
from gateway.serving.call import Call
from gateway.serving.chains import find_model
from gateway.serving.media import media_meter
from gateway.serving.meter import Meter
from gateway.v1.admission import authenticated_call, read_body, read_json
from gateway.v1.errors import api_view, bad_request
from gateway.v1.images import media_input, number
from gateway.v1.media import allowed_values, check_choice, check_extras, default_choice, text_field
from gateway.v1.transcripts import encode_transcript
from media.files import served_content_type
from providers import router
from providers.media_types import (
    MediaInput,
    SpeechRequest,
    SpeechResult,
    TranscriptionRequest,
    TranscriptionResult,
)
from providers.router import ModelInfo
from providers.types import Usage

SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
SPEECH_FIELDS = {"model", "input", "voice", "response_format", "speed", "instructions", "stream_format"}
TRANSCRIPTION_FIELDS = {"model", "file", "language", "prompt", "response_format", "temperature",
                        "timestamp_granularities[]", "timestamp_granularities", "stream"}
GRANULARITIES = ("word", "segment")
DEFAULT_MAX_INPUT_CHARS = 4096
MIN_BYTES_PER_SECOND = 1000
INSTRUCTION_TOKENS = 256  # what an adapter adds to a transcription prompt (Gemini's instruction), at most
MILLISECOND = Decimal("0.001")
LANGUAGE = re.compile(r"^[a-z]{2,3}$")

Decoded = TypeVar("Decoded", SpeechRequest, TranscriptionRequest)
Result = TypeVar("Result", SpeechResult, TranscriptionResult)


@dataclass(slots=True)
class AudioJob:
    """An admitted audio request: what to ask, how to bill it when the provider does not say."""

    model: ModelInfo
    chain: router.Chain
    meter: Meter
    most: Usage


async def admit_audio(call: Call, fields: dict, *, capability: str, operation: str, example: str,
                      decode: Callable[[ModelInfo], tuple[Decoded, Usage]],
                      service: str = "") -> tuple[Decoded, AudioJob]:
    """Model, plan and adapter, then the request decoded for the model and admitted: ``decode(model)``
    answers the canonical request and the most it can use. ``service``: what the adapter's
    ``operation`` is called in a refusal (default: the capability)."""
    public_id = fields.get("model")
    if not isinstance(public_id, str) or not public_id:
        raise bad_request(f"model is required: name a {capability} model, e.g. '{example}' (GET /v1/models lists the "
                          "models your plan includes).", param="model", code="missing_required_parameter")
    model, deployments = await find_model(public_id, capability=capability)
    entitlements.check_model(call.caller, model)
    if not deployments[0].adapter.supports(operation):
        raise bad_request(f"'{model.public_id}' (provider {model.provider}) does not serve {service or capability} "
                          "here.", param="model", code="unsupported_operation")
    decoded, most = decode(model)
    meter = await media_meter(call, model, most=most)
    return decoded, AudioJob(model=model, chain=router.Chain(deployments, model.fallback_on), meter=meter, most=most)


async def run_audio(job: AudioJob, attempt: Callable[[Any, Any], Awaitable[Result]],
                    settle_usage: Callable[[Result], tuple[Usage, bool]]) -> Result:
    """The provider call along the chain, settled once (the meter's scope): ``settle_usage(result)``
    is the usage to record; a failure records none (and costs nothing)."""
    meter = job.meter
    async with meter:
        result = await router.call_chain(job.chain, attempt, meter.trace)
        meter.settlement.usage, meter.settlement.usage_estimated = settle_usage(result)
        meter.settlement.upstream_model = result.upstream_model
    return result


def is_token_priced(model: ModelInfo) -> bool:
    return bool(model.prices.input or model.prices.output)


def with_reserved_tokens(usage: Usage, job: AudioJob) -> tuple[Usage, bool]:
    """A token-priced model whose provider reported no tokens is billed the tokens reserved."""
    if is_token_priced(job.model) and not (usage.input_tokens or usage.output_tokens):
        usage.input_tokens, usage.output_tokens = job.most.input_tokens, job.most.output_tokens
        return usage, True
    return usage, False


# --- speech -------------------------------------------------------------------------------------

@api_view
async def speech(request):
    """POST /v1/audio/speech, and /v1/audio/generation."""
    call = await authenticated_call(request, method="POST")
    fields = read_json(request)
    def decode(model: ModelInfo) -> tuple[SpeechRequest, Usage]:
        speech_request = decode_speech(model, fields)
        return speech_request, most_speech(model, speech_request)

    speech_request, job = await admit_audio(call, fields, capability="speech", operation="speech",
                                            example="openai/tts-1", decode=decode)

    def settle_usage(result: SpeechResult) -> tuple[Usage, bool]:
        result.usage.characters = len(speech_request.input)
        return with_reserved_tokens(result.usage, job)

    result = await run_audio(job, lambda adapter, target: adapter.speech(speech_request, target),
                             settle_usage)
    # The provider names the type: served only as a known audio type, never as a page.
    return HttpResponse(result.audio, content_type=served_content_type(result.content_type))


def decode_speech(model: ModelInfo, fields: dict) -> SpeechRequest:
    """The canonical request, checked against what the model takes."""
    options = model.media_options
    text = fields.get("input")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("input is required: the text to speak.", param="input", code="missing_required_parameter")
    longest = int(options.get("max_input_chars", DEFAULT_MAX_INPUT_CHARS))
    if len(text) > longest:
        raise bad_request(f"input is {len(text)} characters; '{model.public_id}' speaks at most {longest} a request. "
                          "Split the text and send it in parts.", param="input")
    voice = fields.get("voice")
    if isinstance(voice, dict):
        raise bad_request(f"'{model.public_id}' takes a voice by name, not a custom voice object.", param="voice")
    if voice is not None and not isinstance(voice, str):
        raise bad_request(f"voice must be a string naming a voice, not {voice!r}.", param="voice")
    voice = voice or default_choice(model, "voices", "default_voice")
    if voice is None and allowed_values(model, "voices") is None:
        raise bad_request("voice is required: name the voice to speak with.", param="voice",
                          code="missing_required_parameter")
    check_choice(model, "voices", voice, param="voice")
    response_format = text_field(fields, "response_format") or default_format(model)
    check_choice(model, "formats", response_format, param="response_format")
    if response_format not in SPEECH_FORMATS:
        raise bad_request(f"response_format {response_format!r} is not available; use one of: "
                          f"{', '.join(allowed_values(model, 'formats') or SPEECH_FORMATS)}.", param="response_format")
    stream_format = fields.get("stream_format")
    if stream_format not in (None, "audio"):
        raise bad_request("stream_format 'sse' is not served here: leave it out (or send 'audio') to get the audio "
                          "itself.", param="stream_format")
    instructions = fields.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request("instructions must be a string.", param="instructions")
    if instructions and not options.get("instructions"):
        raise bad_request(f"'{model.public_id}' takes no instructions; leave them out, or use a model that does "
                          "(e.g. 'openai/gpt-4o-mini-tts').", param="instructions")
    speed = decode_speed(model, number(fields, "speed", float))
    extras = {name: value for name, value in fields.items() if name not in SPEECH_FIELDS and value is not None}
    check_extras(model, extras)
    return SpeechRequest(model=model.public_id, input=text, voice=voice, response_format=response_format,
                         speed=speed, instructions=instructions or None, extra=extras)


def default_format(model: ModelInfo) -> str:
    declared = model.media_options.get("default_format")
    if declared:
        return declared
    formats = allowed_values(model, "formats")
    return "mp3" if not formats or "mp3" in formats else formats[0]


def decode_speed(model: ModelInfo, speed: float | None) -> float | None:
    if speed is None:
        return None
    bounds = model.media_options.get("speed_range")
    if not bounds:
        if speed == 1.0:
            return None  # the default speed, which every model speaks at
        raise bad_request(f"'{model.public_id}' takes no speed; leave it out.", param="speed")
    low, high = float(bounds[0]), float(bounds[1])
    if not low <= speed <= high:
        raise bad_request(f"speed must be between {low:g} and {high:g} for '{model.public_id}', not {speed:g}.",
                          param="speed")
    return speed


def most_speech(model: ModelInfo, speech_request: SpeechRequest) -> Usage:
    """The characters to speak, and for token-priced models the most tokens: every byte of text
    a token, and the audio at the declared rate (slower speech is longer)."""
    characters = len(speech_request.input)
    most = Usage(characters=characters)
    rate = model.media_options.get("output_tokens_per_character")
    if rate:
        speed = min(speech_request.speed or 1.0, 1.0)
        most.input_tokens = len(speech_request.input.encode()) + len((speech_request.instructions or "").encode())
        most.output_tokens = math.ceil(characters * float(rate) / speed)
    return most


# --- transcription ------------------------------------------------------------------------------

@api_view
async def transcriptions(request):
    call = await authenticated_call(request, method="POST")
    fields, audio = read_audio_form(request, verb="transcribe")
    granularities = request.POST.getlist("timestamp_granularities[]") or request.POST.getlist(
        "timestamp_granularities")
    heard = wav_seconds(audio.content)

    def decode(model: ModelInfo) -> tuple[TranscriptionRequest, Usage]:
        transcription = decode_transcription(model, fields, audio, granularities)
        return transcription, most_transcription(model, transcription, heard)

    transcription, job = await admit_audio(call, fields, capability="transcription",
                                           operation="transcribe", example="openai/whisper-1", decode=decode)
    result = await run_audio(job, lambda adapter, target: adapter.transcribe(transcription, target),
                             lambda result: heard_usage(result, heard, job))
    return encode_transcript(result, transcription, token_priced=is_token_priced(job.model))


def read_audio_form(request, *, verb: str) -> tuple[dict, MediaInput]:
    """A multipart audio request (transcription, translation): its form fields and the file 'file'."""
    read_body(request)  # the size limit, before parsing
    if not request.content_type.startswith("multipart/form-data"):
        raise bad_request(f"POST {request.path} takes multipart/form-data: the audio as the file 'file', "
                          "the other fields as form fields.", code="invalid_content_type")
    fields = {name: request.POST.get(name) for name in request.POST}
    if "file" not in request.FILES:
        raise bad_request(f"Send the audio to {verb} as the multipart file 'file'.", param="file",
                          code="missing_required_parameter")
    audio = media_input(request.FILES["file"])
    if not audio.content:
        raise bad_request(f"The file 'file' is empty; send the audio to {verb}.", param="file")
    return fields, audio


def heard_usage(result: TranscriptionResult, heard: Decimal | None, job: AudioJob) -> tuple[Usage, bool]:
    """A transcript's usage to settle: the seconds the provider bills, else its duration, else the
    WAV's, else the bound reserved; tokens as with_reserved_tokens."""
    usage = result.usage
    seconds = usage.audio_seconds or result.duration_seconds or heard or job.most.audio_seconds
    usage.audio_seconds = Decimal(seconds).quantize(MILLISECOND, ROUND_CEILING)
    return with_reserved_tokens(usage, job)


def decode_transcript_format(model: ModelInfo, fields: dict) -> str:
    response_format = text_field(fields, "response_format") or "json"
    check_choice(model, "formats", response_format, param="response_format")
    if response_format not in TRANSCRIPT_FORMATS:
        raise bad_request(f"response_format {response_format!r} is not available; use one of: "
                          f"{', '.join(TRANSCRIPT_FORMATS)}.", param="response_format")
    return response_format


def decode_temperature(fields: dict) -> float | None:
    temperature = number(fields, "temperature", float)
    if temperature is not None and not 0 <= temperature <= 1:
        raise bad_request(f"temperature must be between 0 and 1, not {temperature:g}.", param="temperature")
    return temperature


def decode_transcription(model: ModelInfo, fields: dict, audio: MediaInput,
                         granularities: list[str]) -> TranscriptionRequest:
    response_format = decode_transcript_format(model, fields)
    if fields.get("stream") in ("true", "True", "1"):
        raise bad_request("stream is not served here: leave it out to get the transcript in one answer.",
                          param="stream")
    language = fields.get("language") or None
    if language is not None and not LANGUAGE.match(language):
        raise bad_request(f"language must be an ISO 639-1 code such as 'en' or 'de', not {language!r}.",
                          param="language")
    temperature = decode_temperature(fields)
    for granularity in granularities:
        if granularity not in GRANULARITIES:
            raise bad_request(f"timestamp_granularities[] {granularity!r} is not available; use word or segment.",
                              param="timestamp_granularities[]")
    if granularities and not model.media_options.get("timestamps"):
        raise bad_request(f"'{model.public_id}' gives no timestamps; leave timestamp_granularities[] out, or use a "
                          "model that does (e.g. 'openai/whisper-1').", param="timestamp_granularities[]")
    if granularities and response_format != "verbose_json":
        raise bad_request("timestamp_granularities[] needs response_format verbose_json.",
                          param="timestamp_granularities[]")
    extras = {name: value for name, value in fields.items() if name not in TRANSCRIPTION_FIELDS and value}
    check_extras(model, extras)
    return TranscriptionRequest(model=model.public_id, file=audio, language=language,
                                prompt=fields.get("prompt") or None, response_format=response_format,
                                temperature=temperature, timestamp_granularities=granularities)


def wav_seconds(content: bytes) -> Decimal | None:
    """How long a WAV file plays, from its header; None for anything the wave module cannot read."""
    try:
        with wave.open(io.BytesIO(content)) as audio:
            frames, rate = audio.getnframes(), audio.getframerate()
    except (wave.Error, EOFError):
        return None
    if not frames or rate <= 0:
        return None
    return (Decimal(frames) / rate).quantize(MILLISECOND, ROUND_CEILING)


def most_transcription(model: ModelInfo, transcription: TranscriptionRequest, heard: Decimal | None) -> Usage:
    """The seconds of audio (the WAV's, else the size's upper bound; whole seconds, as providers
    round them up), and for token-priced models the most tokens those seconds and the prompt can be."""
    size_bound = Decimal(len(transcription.file.content or b"")) / MIN_BYTES_PER_SECOND
    seconds = Decimal(math.ceil(heard or size_bound))
    most = Usage(audio_seconds=seconds)
    per_second_in = model.media_options.get("input_tokens_per_second")
    if per_second_in:
        most.input_tokens = (math.ceil(seconds * Decimal(str(per_second_in)))
                             + len((transcription.prompt or "").encode()) + INSTRUCTION_TOKENS)
        most.output_tokens = math.ceil(seconds * Decimal(str(model.media_options.get("output_tokens_per_second", 0))))
    return most
