"""A transcript (or a translation) in the response_format asked for, from the provider's
answer: json ``{text, usage}``, text, srt and vtt (written here from the segments, so every model
answers every format it declares), verbose_json ``{task, language, duration, text, segments,
words?, usage}``. ``usage`` is OpenAI's: ``{"type": "tokens", ...}`` for token-priced models,
``{"type": "duration", "seconds"}`` for the others."""

import json

from django.http import HttpResponse, JsonResponse

from providers.media_types import TranscriptionRequest, TranscriptionResult


def encode_transcript(result: TranscriptionResult, transcription: TranscriptionRequest, *,
                      token_priced: bool, task: str = "transcribe") -> HttpResponse:
    """The transcript (``task`` "translate": the English translation) in the format asked for."""
    response_format, usage = transcription.response_format, result.usage
    if token_priced:
        reported = {"type": "tokens", "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                    "total_tokens": usage.input_tokens + usage.output_tokens}
    else:
        reported = {"type": "duration", "seconds": float(usage.audio_seconds)}
    if response_format == "json":
        return JsonResponse({"text": result.text, "usage": reported})
    if response_format == "text":
        return HttpResponse(result.text + "\n", content_type="text/plain; charset=utf-8")
    segments = segments_of(result)
    if response_format == "srt":
        return HttpResponse(srt(segments), content_type="text/plain; charset=utf-8")
    if response_format == "vtt":
        return HttpResponse(vtt(segments), content_type="text/vtt; charset=utf-8")
    language = result.language or transcription.language or ("english" if task == "translate" else "")
    body = {"task": task, "language": language,
            "duration": float(result.duration_seconds or usage.audio_seconds), "text": result.text,
            "segments": result.segments, "usage": reported}
    if "word" in transcription.timestamp_granularities:
        body["words"] = result.words
    return HttpResponse(json.dumps(body), content_type="application/json")


def segments_of(result: TranscriptionResult) -> list[dict]:
    """The timed segments; a provider that sent none gets one spanning the whole audio."""
    if result.segments:
        return result.segments
    end = float(result.duration_seconds or result.usage.audio_seconds)
    return [{"start": 0.0, "end": end, "text": result.text}]


def timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{separator}{millis:03d}"


def srt(segments: list[dict]) -> str:
    return "".join(f"{index}\n{timestamp(float(s['start']), ',')} --> {timestamp(float(s['end']), ',')}\n"
                   f"{str(s['text']).strip()}\n\n" for index, s in enumerate(segments, start=1))


def vtt(segments: list[dict]) -> str:
    return "WEBVTT\n\n" + "".join(f"{timestamp(float(s['start']), '.')} --> {timestamp(float(s['end']), '.')}\n"
                                  f"{str(s['text']).strip()}\n\n" for s in segments)
