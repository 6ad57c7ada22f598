"""A fake WaveSpeedAI API (api.wavespeed.ai) over real HTTP on 127.0.0.1.

WIRE_FORMATS.md does not cover WaveSpeed; the facts this fake relies on, and where they come from:
- Submit: ``POST /api/v3/{model id}`` (the id may hold slashes: ``wavespeed-ai/flux-dev-ultra-fast``),
  ``Authorization: Bearer <key>``, ``Content-Type: application/json``, the model's input as the
  body; 200 ``{"code": 200, "message": "success", "data": {"id", "model", "outputs": [], "urls":
  {"get": ".../api/v3/predictions/{id}/result"}, "has_nsfw_contents": [], "status": "created",
  "created_at", "error": "", "timings": {"inference": 0}}}`` (wavespeed.ai/docs/submit-task and
  /docs/shared/submit-response; the official SDK WaveSpeedAI/wavespeed-python
  src/wavespeed/api/client.py ``_submit`` reads ``data.id``).
- Result: ``GET /api/v3/predictions/{id}/result``, the same envelope; ``data.status`` is created,
  processing, completed (``outputs``: file URLs, ``timings.inference`` ms) or failed (``error``, and
  WaveSpeed's error ``code``: 1200 content moderation, 1400 missing parameter, 1401 invalid
  parameter, 1402 media access failed, 5000 internal, ...) (wavespeed.ai/docs/get-result,
  /docs/error-codes; the SDK's ``_get_result`` and ``_wait`` poll exactly this URL and statuses).
- Upload: ``POST /api/v3/media/upload/binary`` multipart ``file`` -> ``{"code": 200, "message":
  "success", "data": {"type", "download_url", "filename", "size"}}`` (the SDK's ``upload``).
- Errors: a 4xx/5xx status with ``{"code": <status>, "message": "...", "data": null}`` (the SDK
  raises on any status but 200 with the body's text; wavespeed.ai/blog/posts/wavespeed-api-auth-errors
  names 401 for a bad key, 429 for rate limits, 5xx for server errors).
- Inputs checked as the model pages say: flux-dev-ultra-fast (prompt, size "W*H", num_images,
  seed, guidance_scale, num_inference_steps, image, mask_image), image-background-remover
  (image), image-face-swap (image, face_image), hunyuan-video-1.5 (prompt, size, duration, seed),
  minimax/speech-02-hd (text, voice_id, speed). A required field missing is a 400.

Outputs are real bytes served at ``/files/{name}``: PNGs of the size asked for ("W*H"), MP4s as
long as the ``duration`` asked for, MP3-typed bytes for speech. Tests script predictions with
``enqueue(Reply(...))``; each submit takes the next reply. Every request is recorded (method,
path, headers, body; multipart uploads as ``{"file": (filename, content_type, bytes)}``) and each
prediction kept in ``predictions``.
"""

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import media_samples
from tests.fakes.server import BODY, TaskApiServer, scripted_state

API_KEY = "wsk-fake-wavespeed-key"
CREATED_AT = "2025-01-01T12:00:00.000Z"


@dataclass
class Reply:
    kind: str = "image"  # what the model makes: image | video | audio
    states: tuple[str, ...] = ("created", "processing", "completed")  # the submit's, then one per look
    error: str = "The fake WaveSpeed model failed as scripted."  # when the last state is failed
    error_code: int = 5000
    submit_status: int = 200  # the submit refused with this status
    message: str = "The fake WaveSpeed API refused as scripted."
    headers: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ("prompt",)
    look_errors: dict[int, int] = field(default_factory=dict)  # look (0-based) -> its error status
    video_seconds: float = 5.0  # when the input asks for no duration


@dataclass
class Prediction:
    id: str
    model: str
    input: dict
    reply: Reply
    looks: int = 0
    outputs: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return scripted_state(self.reply.states, self.looks)


class FakeWaveSpeed(TaskApiServer):
    thread_name = "fake-wavespeed"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)
        self.predictions: dict[str, Prediction] = {}
        self.looked = threading.Event()  # set by every result look

    def reset(self) -> None:
        super().reset()
        self.predictions.clear()
        self.looked.clear()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/v3/media/upload/binary", self.upload)
        router.add_get("/api/v3/predictions/{id}/result", self.result)
        router.add_post("/api/v3/{model:.+}", self.submit)

    # --- plumbing -------------------------------------------------------------------------------

    @staticmethod
    def envelope(data: Any, status: int = 200, message: str = "success", headers=None) -> web.Response:
        return web.json_response({"code": status, "message": message, "data": data}, status=status, headers=headers)

    def unauthorized(self) -> web.Response:
        return self.envelope(None, 401, "Invalid authentication: check your API key.")

    async def read_body(self, request: web.Request) -> Any:
        if request.content_type != "multipart/form-data":
            return await super().read_body(request)
        return {part.name: (part.filename, part.headers.get("Content-Type"), await part.read())
                async for part in await request.multipart()}

    def view(self, prediction: Prediction) -> dict[str, Any]:
        status = prediction.status
        if status == "completed" and not prediction.outputs:
            prediction.outputs = self.make_outputs(prediction)
        failed = status == "failed"
        return {"id": prediction.id, "model": prediction.model,
                "outputs": prediction.outputs if status == "completed" else [],
                "urls": {"get": f"{self.address}/api/v3/predictions/{prediction.id}/result"},
                "has_nsfw_contents": [False] * len(prediction.outputs) if status == "completed" else [],
                "status": status, "created_at": CREATED_AT, "error": prediction.reply.error if failed else "",
                **({"code": prediction.reply.error_code} if failed else {}),
                "timings": {"inference": 2500 if status == "completed" else 0}}

    # --- the API --------------------------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.Response:
        body = request[BODY]
        reply = self.next_reply()
        if reply.submit_status != 200:
            return self.envelope(None, reply.submit_status, reply.message, reply.headers)
        if not isinstance(body, dict):
            return self.envelope(None, 400, "The request body must be a JSON object.")
        missing = [name for name in reply.required if name not in body]
        if missing:
            return self.envelope(None, 400, f"Missing required parameter: {missing[0]}")
        prediction = Prediction(uuid.uuid4().hex, request.match_info["model"], body, reply)
        self.predictions[prediction.id] = prediction
        return self.envelope(self.view(prediction))

    async def result(self, request: web.Request) -> web.Response:
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None:
            return self.envelope(None, 404, "Prediction not found.")
        look = sum(1 for r in self.requests if r["path"] == request.path) - 1
        self.looked.set()
        if look in prediction.reply.look_errors:
            return self.envelope(None, prediction.reply.look_errors[look], "Service temporarily unavailable.")
        prediction.looks += 1
        return self.envelope(self.view(prediction))

    async def upload(self, request: web.Request) -> web.Response:
        body = request[BODY]
        if not isinstance(body, dict) or "file" not in body:
            return self.envelope(None, 400, "Missing file.")
        filename, content_type, content = body["file"]
        url = self.keep(f"upload-{uuid.uuid4().hex[:8]}-{filename}", content_type or "application/octet-stream", content)
        return self.envelope({"type": (content_type or "").split("/")[0], "download_url": url,
                              "filename": filename, "size": len(content)})

    # --- outputs --------------------------------------------------------------------------------

    def make_outputs(self, prediction: Prediction) -> list[str]:
        given = prediction.input
        if prediction.reply.kind == "video":
            seconds = float(given.get("duration") or prediction.reply.video_seconds)
            return [self.keep(f"{prediction.id}.mp4", "video/mp4", media_samples.mp4(seconds))]
        if prediction.reply.kind == "audio":
            return [self.keep(f"{prediction.id}.mp3", "audio/mpeg", b"ID3\x04\x00fake-mp3:" + given["text"].encode())]
        width, _, height = str(given.get("size", "1024*1024")).partition("*")
        return [self.keep(f"{prediction.id}-{index}.png", "image/png", media_samples.png(int(width), int(height)))
                for index in range(int(given.get("num_images", 1)))]
