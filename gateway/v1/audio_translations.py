"""POST /v1/audio/translations: OpenAI's translation of speech into English text, for the
transcription models whose catalog row declares media_options ``translations: true`` (whisper-1)
on a provider whose adapter translates (``translate``); any other model is a 400 before admission.

    key -> multipart (file, model, prompt, response_format, temperature) -> model -> plan ->
    the adapter translates -> declared, options -> the audio's duration -> admit_media (as a
    transcription: the plan's transcription capability and minutes, seconds of audio) -> router
    -> json | text | srt | vtt | verbose_json (gateway.v1.transcripts) -> settle the seconds heard

A translation is a transcription in everything but its output language: the same reservation
(gateway.v1.audio) and the same record (capability ``transcription``), billed by the seconds of
audio. OpenAI's translations report no usage, so the seconds settled are the duration its
verbose_json answers (else the WAV's, else the bound reserved).
"""

from django.http import HttpResponse

from gateway.v1.admission import authenticated_call
from gateway.v1.audio import (
    admit_audio,
    decode_temperature,
    decode_transcript_format,
    heard_usage,
    is_token_priced,
    most_transcription,
    read_audio_form,
    run_audio,
    wav_seconds,
)
from gateway.v1.errors import api_view, bad_request
from gateway.v1.media import check_extras
from gateway.v1.transcripts import encode_transcript
from providers.media_types import MediaInput, TranscriptionRequest
from providers.router import ModelInfo
from providers.types import Usage

FIELDS = {"model", "file", "prompt", "response_format", "temperature"}


@api_view
async def translations(request) -> HttpResponse:
    call = await authenticated_call(request, method="POST")
    fields, audio = read_audio_form(request, verb="translate")
    heard = wav_seconds(audio.content)

    def decode(model: ModelInfo) -> tuple[TranscriptionRequest, Usage]:
        translation = decode_translation(model, fields, audio)
        return translation, most_transcription(model, translation, heard)

    translation, job = await admit_audio(call, fields, capability="transcription", operation="translate",
                                         example="openai/whisper-1", decode=decode, service="translation")
    result = await run_audio(job, lambda adapter, target: adapter.translate(translation, target),
                             lambda result: heard_usage(result, heard, job))
    return encode_transcript(result, translation, token_priced=is_token_priced(job.model), task="translate")


def decode_translation(model: ModelInfo, fields: dict, audio: MediaInput) -> TranscriptionRequest:
    """The canonical request: a transcription with no language (the text is English) and no timestamps."""
    if not model.media_options.get("translations"):
        raise bad_request(f"'{model.public_id}' does not translate audio; use a model that does (e.g. "
                          "'openai/whisper-1'), or transcribe it in its own language at /v1/audio/transcriptions.",
                          param="model", code="unsupported_operation")
    if fields.get("language"):
        raise bad_request("language is not taken by translations: the text is always English, whatever the audio's "
                          "language. Leave it out (or transcribe with it at /v1/audio/transcriptions).",
                          param="language")
    response_format = decode_transcript_format(model, fields)
    temperature = decode_temperature(fields)
    check_extras(model, {name: value for name, value in fields.items() if name not in FIELDS and value})
    return TranscriptionRequest(model=model.public_id, file=audio, prompt=fields.get("prompt") or None,
                                response_format=response_format, temperature=temperature)
