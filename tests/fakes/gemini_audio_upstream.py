"""The fake Gemini API (tests/fakes/gemini_upstream.py) with Google's audio: TTS and audio understanding.

WIRE_FORMATS.md section 5, ``generateContent``:
- A TTS model (``-tts`` in its name) must be asked for ``responseModalities: ["AUDIO"]`` and takes
  ``speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName`` (one of Gemini's voices); it answers
  one ``inlineData`` part, ``audio/L16;codec=pcm;rate=24000``: silence, a hundredth of a second a
  character of the prompt's text. usageMetadata: the prompt's words in, 25 AUDIO tokens a second
  out (candidatesTokensDetails).
- A request carrying audio (an ``inlineData`` part with an ``audio/*`` type) is heard: the prompt
  counts 32 AUDIO tokens a second of it (the WAV's header says how long it is; other audio counts
  one second per 16,000 bytes) beside its TEXT tokens, and the answer is the transcript
  (``DEFAULT_TRANSCRIPT`` unless a ``Reply`` is scripted).
"""

import base64
import io
import math
import wave

from aiohttp import web

from tests.fakes.gemini_upstream import FakeGemini, Reply, count_words, text_part

VOICES = {"Zephyr", "Puck", "Charon", "Kore", "Fenrir", "Leda", "Orus", "Aoede", "Callirrhoe", "Autonoe", "Enceladus",
          "Iapetus", "Umbriel", "Algieba", "Despina", "Erinome", "Algenib", "Rasalgethi", "Laomedeia", "Achernar",
          "Alnilam", "Schedar", "Gacrux", "Pulcherrima", "Achird", "Zubenelgenubi", "Vindemiatrix", "Sadachbia",
          "Sadaltager", "Sulafat"}
SAMPLE_RATE = 24000
SPOKEN_TOKENS_PER_SECOND = 25
HEARD_TOKENS_PER_SECOND = 32
DEFAULT_TRANSCRIPT = "Hello from the fake Gemini listener."


def seconds_of(audio: bytes) -> float:
    try:
        with wave.open(io.BytesIO(audio)) as heard:
            return heard.getnframes() / heard.getframerate()
    except (wave.Error, EOFError):
        return len(audio) / 16000


def parts_of(body: dict) -> list[dict]:
    return [part for content in body.get("contents") or () for part in content.get("parts") or ()]


class FakeGeminiAudio(FakeGemini):
    thread_name = "fake-gemini-audio"

    async def models(self, request: web.Request) -> web.StreamResponse:
        model, _, action = request.match_info["model_action"].rpartition(":")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if action != "generateContent" or not isinstance(body, dict):
            return await super().models(request)
        if "-tts" in model and not self.script:
            problem = self.speech_refusal(body)
            if problem:
                self.requests.append({"model": model, "action": action, "query": dict(request.query),
                                      "headers": dict(request.headers), "body": body})
                return self.error(400, "INVALID_ARGUMENT", problem)
            self.enqueue(self.spoken(body))
        elif any(str((part.get("inlineData") or {}).get("mimeType", "")).startswith("audio/")
                 for part in parts_of(body)):
            # A scripted transcript (a plain text Reply) is counted as this audio's answer.
            reply = self.script.popleft() if self.script else Reply(text=DEFAULT_TRANSCRIPT)
            if reply.status == 200 and reply.usage is None and reply.parts is None:
                reply = self.heard(body, reply)
            self.script.appendleft(reply)
        return await super().models(request)

    @staticmethod
    def speech_refusal(body: dict) -> str | None:
        config = body.get("generationConfig") or {}
        if config.get("responseModalities") != ["AUDIO"]:
            return "The TTS model only answers AUDIO: set generationConfig.responseModalities to [\"AUDIO\"]."
        voice = (((config.get("speechConfig") or {}).get("voiceConfig") or {}).get("prebuiltVoiceConfig")
                 or {}).get("voiceName", "Kore")
        if voice not in VOICES:
            return f"Voice name {voice} is not supported."
        return None

    @staticmethod
    def spoken(body: dict) -> Reply:
        text = " ".join(part.get("text", "") for part in parts_of(body))
        pcm = b"\x00\x00" * (SAMPLE_RATE // 100 * len(text))
        prompt = count_words(text)
        output = math.ceil(len(pcm) / 2 / SAMPLE_RATE * SPOKEN_TOKENS_PER_SECOND)
        part = {"inlineData": {"mimeType": f"audio/L16;codec=pcm;rate={SAMPLE_RATE}",
                               "data": base64.b64encode(pcm).decode()}}
        return Reply(parts=[part], usage={
            "promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
            "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": output}]})

    @staticmethod
    def heard(body: dict, reply: Reply) -> Reply:
        text_tokens = sum(count_words(part.get("text", "")) for part in parts_of(body))
        audio_tokens = sum(math.ceil(seconds_of(base64.b64decode(part["inlineData"]["data"])) * HEARD_TOKENS_PER_SECOND)
                           for part in parts_of(body) if "inlineData" in part)
        output = count_words(reply.text)
        reply.parts = [text_part(reply.text)]
        reply.usage = {"promptTokenCount": text_tokens + audio_tokens, "candidatesTokenCount": output,
                       "totalTokenCount": text_tokens + audio_tokens + output,
                       "promptTokensDetails": [{"modality": "TEXT", "tokenCount": text_tokens},
                                               {"modality": "AUDIO", "tokenCount": audio_tokens}]}
        return reply
