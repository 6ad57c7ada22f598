"""The OpenAI Audio API routes of the fake OpenAI upstream (tests/fakes/openai_upstream.py).

WIRE_FORMATS.md section 3:
- ``POST /v1/audio/speech``: JSON in, the audio's bytes out (``Content-Type`` by format: mp3
  audio/mpeg, ...; wav and pcm are real 16-bit mono 24 kHz audio, the others a few bytes with
  their format's signature). Like the real API it refuses a model it does not have, a voice the
  model lacks, a format, a speed outside 0.25-4, ``instructions`` or ``stream_format: sse`` on
  tts-1 and tts-1-hd, an input over 4096 characters. ``stream_format: sse`` answers data-only
  events: ``speech.audio.delta`` with base64 ``audio`` pieces, then ``speech.audio.done`` with
  ``usage {input_tokens, output_tokens, total_tokens}`` (input: the words of input and
  instructions; output: 2 tokens a character of input, this fake's own count).
- ``POST /v1/audio/transcriptions``: multipart (``file``, ``model``, ``language``, ``prompt``,
  ``response_format``, ``temperature``, ``timestamp_granularities[]``). The audio's duration is
  read from a WAV upload's header, else scripted (``TranscriptReply.duration``). whisper-1 answers
  json (``usage {"type": "duration", "seconds"}``, whole seconds rounded up), verbose_json
  (``language`` as a name, ``duration``, ``segments``, ``words`` when asked), text, srt and vtt as
  plain text; the GPT transcribe models take json and text only, json with token ``usage``
  (audio: 10 tokens a second, rounded up; text: the prompt's words; output: the transcript's words).
- ``POST /v1/audio/translations``: multipart, as OpenAI's API reference and the openai SDK's
  ``audio.translations.create`` describe it: ``file`` (required), ``model`` (only ``whisper-1``),
  ``prompt`` (in English), ``response_format`` (json, text, srt, verbose_json, vtt; json the
  default) and ``temperature`` (0-1); there is no ``language``: the text is always English. json
  answers ``{text}`` and verbose_json ``{task: "translate", language: "english", duration, text,
  segments}`` (the SDK's Translation and TranslationVerbose: neither carries ``usage``); text, srt
  and vtt plain text. It refuses another model and fields it does not take ("Unrecognized request
  argument supplied"), as the real API refuses unknown arguments.

Tests script them with ``fake_openai.enqueue(SpeechReply(...))``, ``TranscriptReply(...)`` or
``TranslationReply(...)`` (a chat ``Reply`` with an error status works too).
"""

import base64
import functools
import io
import json
import math
import time
import uuid
import wave
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.openai_images import read_fields

TTS_VOICES = ["alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer"]
SPEECH_MODELS = {"tts-1": TTS_VOICES, "tts-1-hd": TTS_VOICES,
                 "gpt-4o-mini-tts": TTS_VOICES + ["ballad", "verse", "marin", "cedar"]}
SPEECH_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav",
                "pcm": "audio/pcm"}
SIGNATURES = {"mp3": b"ID3\x04\x00\x00", "opus": b"OggS\x00\x02", "aac": b"\xff\xf1\x50\x80", "flac": b"fLaC\x00\x00"}
SAMPLE_RATE = 24000
TRANSCRIBE_FORMATS = {"whisper-1": ["json", "text", "srt", "verbose_json", "vtt"],
                      "gpt-4o-transcribe": ["json", "text"], "gpt-4o-mini-transcribe": ["json", "text"]}
AUDIO_TOKENS_PER_SECOND = 10
DEFAULT_TRANSCRIPT = "Hello from the fake transcriber. It heard two sentences."
DEFAULT_TRANSLATION = "Good morning from the fake translator. It speaks English only."
TRANSCRIPT_FORMATS = ["json", "text", "srt", "verbose_json", "vtt"]
TRANSLATION_FIELDS = {"model", "prompt", "response_format", "temperature"}


@dataclass
class SpeechReply:
    status: int = 200
    error_type: str = "invalid_request_error"
    error_code: str | None = None
    error_message: str = "The fake upstream failed as scripted."
    headers: dict[str, str] = field(default_factory=dict)
    send_usage: bool = True  # False: the SSE answer's done event carries no usage


@dataclass
class TranscriptReply:
    text: str = DEFAULT_TRANSCRIPT
    duration: float | None = None  # seconds, for uploads that are not WAV
    status: int = 200
    error_type: str = "invalid_request_error"
    error_code: str | None = None
    error_message: str = "The fake upstream failed as scripted."
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class TranslationReply(TranscriptReply):
    text: str = DEFAULT_TRANSLATION


def scripted(fake, kind: type):
    """The next reply as ``kind``; a chat Reply scripted for an error becomes one."""
    reply = fake.next_reply()
    if isinstance(reply, kind):
        return reply
    return kind(status=reply.status, error_type=reply.error_type, error_code=reply.error_code,
                error_message=reply.error_message, headers=reply.headers)


def pcm_for(text: str) -> bytes:
    """Silence, a hundredth of a second per character."""
    return b"\x00\x00" * (SAMPLE_RATE // 100 * len(text))


def audio_for(text: str, response_format: str) -> bytes:
    if response_format == "pcm":
        return pcm_for(text)
    if response_format == "wav":
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(pcm_for(text))
        return buffer.getvalue()
    return SIGNATURES[response_format] + text.encode()


def speech_refusal(body: dict) -> tuple[str, str | None] | None:
    model = body.get("model")
    if model not in SPEECH_MODELS:
        return f"Invalid model {model!r}.", "model"
    text = body.get("input")
    if not isinstance(text, str) or not text:
        return "input is required.", "input"
    if len(text) > 4096:
        return "input is longer than 4096 characters.", "input"
    if body.get("voice") not in SPEECH_MODELS[model]:
        return f"Invalid voice {body.get('voice')!r} for {model}.", "voice"
    if body.get("response_format", "mp3") not in SPEECH_TYPES:
        return f"Invalid response_format {body.get('response_format')!r}.", "response_format"
    speed = body.get("speed", 1.0)
    if not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        return f"speed must be between 0.25 and 4.0, not {speed!r}.", "speed"
    if model.startswith("tts-1") and "instructions" in body:
        return "instructions are not supported for tts-1 and tts-1-hd.", "instructions"
    if model.startswith("tts-1") and body.get("stream_format") == "sse":
        return "stream_format sse is not supported for tts-1 and tts-1-hd.", "stream_format"
    unknown = set(body) - {"model", "input", "voice", "response_format", "speed", "instructions", "stream_format"}
    if unknown:
        return f"Unknown parameter: '{unknown.pop()}'.", None
    return None


def invalid(message: str, param: str | None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": "invalid_value"}}
    return web.json_response(body, status=400, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})


async def speech(fake, request: web.Request) -> web.StreamResponse:
    body = await request.json()
    fake.requests.append({"path": request.path, "headers": dict(request.headers), "body": body,
                          "at": time.monotonic()})
    if fake.api_key is not None and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return fake.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    reply = scripted(fake, SpeechReply)
    if reply.status != 200:
        return fake.error(reply.status, reply.error_message, reply.error_type, reply.error_code, reply.headers)
    problem = speech_refusal(body)
    if problem:
        return invalid(*problem)
    response_format = body.get("response_format", "mp3")
    audio = audio_for(body["input"], response_format)
    if body.get("stream_format") != "sse":
        return web.Response(body=audio, headers={"Content-Type": SPEECH_TYPES[response_format],
                                                 "x-request-id": f"req_{uuid.uuid4().hex}"})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    middle = len(audio) // 2
    for piece in (audio[:middle], audio[middle:]):
        event = {"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()}
        await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
    done: dict = {"type": "speech.audio.done"}
    if reply.send_usage:
        input_tokens = len(body["input"].split()) + len(body.get("instructions", "").split())
        output_tokens = 2 * len(body["input"])
        done["usage"] = {"input_tokens": input_tokens, "output_tokens": output_tokens,
                         "total_tokens": input_tokens + output_tokens}
    await response.write(b"data: " + json.dumps(done).encode() + b"\n\n")
    await response.write_eof()
    return response


def wav_duration(content: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(content)) as audio:
            return audio.getnframes() / audio.getframerate()
    except (wave.Error, EOFError):
        return None


def sentences(text: str) -> list[str]:
    parts = [part.strip() for part in text.replace(". ", ".\n").splitlines() if part.strip()]
    return parts or [text]


def segments_for(text: str, duration: float) -> list[dict]:
    pieces = sentences(text)
    step = duration / len(pieces)
    return [{"id": index, "seek": 0, "start": round(index * step, 3), "end": round((index + 1) * step, 3),
             "text": " " + piece, "tokens": [50364 + index], "temperature": 0.0, "avg_logprob": -0.2,
             "compression_ratio": 1.1, "no_speech_prob": 0.01} for index, piece in enumerate(pieces)]


def words_for(text: str, duration: float) -> list[dict]:
    words = text.split()
    step = duration / len(words)
    return [{"word": word.strip(".,"), "start": round(index * step, 3), "end": round((index + 1) * step, 3)}
            for index, word in enumerate(words)]


def timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    return (f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}"
            f"{separator}{millis % 1000:03d}")


async def transcriptions(fake, request: web.Request) -> web.Response:
    fields, files = await read_fields(request)
    form = await request.post()
    granularities = form.getall("timestamp_granularities[]", [])
    fake.requests.append({"path": request.path, "headers": dict(request.headers), "body": fields, "files": files,
                          "granularities": granularities, "at": time.monotonic()})
    if fake.api_key is not None and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return fake.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    reply = scripted(fake, TranscriptReply)
    if reply.status != 200:
        return fake.error(reply.status, reply.error_message, reply.error_type, reply.error_code, reply.headers)
    model = fields.get("model")
    upload = next((item for item in files if item["field"] == "file"), None)
    response_format = fields.get("response_format", "json")
    if model not in TRANSCRIBE_FORMATS:
        return invalid(f"Invalid model {model!r}.", "model")
    if upload is None:
        return invalid("file is required.", "file")
    if response_format not in TRANSCRIBE_FORMATS[model]:
        return invalid(f"response_format '{response_format}' is not compatible with {model}.", "response_format")
    if granularities and response_format != "verbose_json":
        return invalid("timestamp_granularities requires response_format verbose_json.", "timestamp_granularities")
    duration = wav_duration(upload["content"]) or reply.duration or len(upload["content"]) / 16000
    text = reply.text
    if response_format in ("text", "srt", "vtt"):
        return plain_text(text, duration, response_format)
    if model.startswith("gpt-"):
        audio_tokens = math.ceil(duration * AUDIO_TOKENS_PER_SECOND)
        text_tokens = len((fields.get("prompt") or "").split())
        output_tokens = len(text.split())
        usage = {"type": "tokens", "input_tokens": audio_tokens + text_tokens, "output_tokens": output_tokens,
                 "total_tokens": audio_tokens + text_tokens + output_tokens,
                 "input_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens}}
        return web.json_response({"text": text, "usage": usage})
    usage = {"type": "duration", "seconds": math.ceil(duration)}
    if response_format == "json":
        return web.json_response({"text": text, "usage": usage})
    answer = {"task": "transcribe", "language": "english", "duration": duration, "text": text,
              "segments": segments_for(text, duration), "usage": usage}
    if "word" in granularities:
        answer["words"] = words_for(text, duration)
    return web.json_response(answer)


def plain_text(text: str, duration: float, response_format: str) -> web.Response:
    """A transcript or translation as text, srt or vtt."""
    if response_format == "text":
        return web.Response(text=text + "\n", content_type="text/plain")
    separator = "," if response_format == "srt" else "."
    cues = [f"{timestamp(s['start'], separator)} --> {timestamp(s['end'], separator)}\n{s['text'].strip()}\n"
            for s in segments_for(text, duration)]
    if response_format == "srt":
        return web.Response(text="\n".join(f"{n}\n{cue}" for n, cue in enumerate(cues, 1)), content_type="text/plain")
    return web.Response(text="WEBVTT\n\n" + "\n".join(cues), content_type="text/plain")


def translation_refusal(fields: dict, files: list[dict]) -> tuple[str, str | None] | None:
    if fields.get("model") != "whisper-1":
        return f"Invalid model {fields.get('model')!r}: translations are made by whisper-1 only.", "model"
    if not any(item["field"] == "file" for item in files):
        return "file is required.", "file"
    unknown = sorted(set(fields) - TRANSLATION_FIELDS)
    if unknown:
        return f"Unrecognized request argument supplied: {', '.join(unknown)}", unknown[0]
    if fields.get("response_format", "json") not in TRANSCRIPT_FORMATS:
        return f"response_format '{fields['response_format']}' is not one of {', '.join(TRANSCRIPT_FORMATS)}.", (
            "response_format")
    return None


async def translations(fake, request: web.Request) -> web.Response:
    fields, files = await read_fields(request)
    fake.requests.append({"path": request.path, "headers": dict(request.headers), "body": fields, "files": files,
                          "at": time.monotonic()})
    if fake.api_key is not None and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return fake.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    reply = scripted(fake, TranslationReply)
    if reply.status != 200:
        return fake.error(reply.status, reply.error_message, reply.error_type, reply.error_code, reply.headers)
    problem = translation_refusal(fields, files)
    if problem:
        return invalid(*problem)
    upload = next(item for item in files if item["field"] == "file")
    duration = wav_duration(upload["content"]) or reply.duration or len(upload["content"]) / 16000
    response_format = fields.get("response_format", "json")
    if response_format in ("text", "srt", "vtt"):
        return plain_text(reply.text, duration, response_format)
    if response_format == "json":
        return web.json_response({"text": reply.text})
    return web.json_response({"task": "translate", "language": "english", "duration": duration, "text": reply.text,
                              "segments": segments_for(reply.text, duration)})


def add_audio_routes(app: web.Application, fake) -> None:
    app.router.add_post("/v1/audio/speech", functools.partial(speech, fake))
    app.router.add_post("/v1/audio/transcriptions", functools.partial(transcriptions, fake))
    app.router.add_post("/v1/audio/translations", functools.partial(translations, fake))
