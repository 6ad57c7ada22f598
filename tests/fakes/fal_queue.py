"""A fake fal.ai queue (queue.fal.run) over real HTTP on 127.0.0.1.

It speaks ../shared/providers/WIRE_FORMATS.md section 6:
- ``POST /{model id}`` (any depth: ``/fal-ai/flux/dev``) with the JSON input queues a request:
  ``{"status": "IN_QUEUE", "request_id", "response_url", "status_url", "cancel_url"}``, the URLs
  under ``/{owner}/{app}/requests/{id}`` only (fal's quirk: ``fal-ai/flux/dev`` -> ``fal-ai/flux``).
- ``GET .../requests/{id}/status?logs=1`` walks the scripted state sequence, one state per check:
  202 ``{"status": "IN_QUEUE", "queue_position", "response_url"}``, 202 ``{"status": "IN_PROGRESS",
  "logs": [{message, level, source, timestamp}] | null, "response_url"}``, then 200 ``{"status":
  "COMPLETED", "logs", "metrics": {"inference_time"}, "response_url", "error", "error_type"}``.
- ``GET .../requests/{id}`` answers the model's output JSON directly once COMPLETED (400 with a
  ``detail`` before), or the scripted error.
- ``PUT .../requests/{id}/cancel``: 202 ``{"status": "CANCELLATION_REQUESTED"}``, 400
  ``{"status": "ALREADY_COMPLETED"}``, 404 ``{"status": "NOT_FOUND"}``. What a cancelled request's
  status then says is not documented; here it is COMPLETED with an error, and its result a 400.
- ``Authorization: Key <key>``; anything else is a 401. Errors are ``{"detail": str | [{loc, msg,
  type}]}`` plus ``error_type`` where scripted, and every answer carries ``x-fal-request-id``.
- Output files are real bytes served at ``/files/{name}``: PNGs of the size asked for
  (``image_size`` preset or ``{width, height}``), MP4s as long as the ``duration`` asked for
  ("8" or "8s"), WAVs.

Tests script requests with ``enqueue(Reply(...))``; each submit takes the next reply. Every HTTP
request is recorded (method, path, query, headers, body) and each queued job kept in ``jobs``.
"""

import asyncio
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import media_samples
from tests.fakes.server import BODY, TaskApiServer, scripted_state

API_KEY = "fal-key-id:fal-key-secret"
PRESETS = {"square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024),
           "portrait_16_9": (576, 1024), "landscape_4_3": (1024, 768), "landscape_16_9": (1024, 576)}
DEFAULT_IMAGE_SIZE = "landscape_4_3"  # flux's default


@dataclass
class Reply:
    kind: str = "image"  # what the model makes: image | video | audio
    states: tuple[str, ...] = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")  # one per status check
    queue_position: int = 2  # the first IN_QUEUE check's position, counting down
    logs: list[str] = field(default_factory=lambda: ["step 7/28", "step 14/28"])
    output: dict | None = None  # the result as given, instead of one made from the input
    required: tuple[str, ...] | None = None  # input fields; default prompt (image, video) or text (audio)
    video_seconds: float = 5.0  # when the input asks for no duration
    video_metadata: bool = False  # the video File also carries duration, width, height (newer fal models)
    submit_status: int = 200  # the submit itself refused with this status
    result_status: int = 200  # the finished request's result answered with this status
    detail: Any = "The fake fal model failed as scripted."
    error_type: str | None = None
    status_errors: dict[int, int] = field(default_factory=dict)  # status check (0-based) -> its error status
    headers: dict[str, str] = field(default_factory=dict)
    status_delay: float = 0.0  # seconds each status check takes to answer
    foreign_urls: bool = False  # the submit answer's URLs name another host (as behind a proxy)


@dataclass
class Job:
    request_id: str
    model: str
    owner_app: str
    input: dict
    reply: Reply
    looks: int = 0  # status checks made
    checks: int = 0  # status checks answered (each moves the request on by one state)
    cancelled: bool = False

    @property
    def state(self) -> str:
        return "COMPLETED" if self.cancelled else scripted_state(("IN_QUEUE", *self.reply.states), self.checks)


class FakeFal(TaskApiServer):
    thread_name = "fake-fal"
    reply_class = Reply
    auth_scheme = "Key"

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)
        self.jobs: dict[str, Job] = {}
        self.looked = threading.Event()  # set by every status check, for tests acting on the first

    def reset(self) -> None:
        super().reset()
        self.jobs.clear()
        self.looked.clear()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/{owner}/{app}/requests/{id}/status", self.status)
        router.add_get("/{owner}/{app}/requests/{id}", self.result)
        router.add_put("/{owner}/{app}/requests/{id}/cancel", self.cancel)
        router.add_post("/{model:.+}", self.submit)

    # --- plumbing -------------------------------------------------------------------------------

    def answer(self, body: Any, status: int = 200, headers: dict | None = None) -> web.Response:
        return web.json_response(body, status=status,
                                 headers={"x-fal-request-id": str(uuid.uuid4()), **(headers or {})})

    def error(self, status: int, detail: Any, error_type: str | None = None, headers=None) -> web.Response:
        body = {"detail": detail, **({"error_type": error_type} if error_type else {})}
        return self.answer(body, status, {**({"x-fal-error-type": error_type} if error_type else {}),
                                          **(headers or {})})

    def unauthorized(self) -> web.Response:
        return self.error(401, "Invalid authentication credentials.")

    def job_for(self, request: web.Request) -> Job | None:
        job = self.jobs.get(request.match_info["id"])
        owner_app = f"{request.match_info['owner']}/{request.match_info['app']}"
        return job if job is not None and job.owner_app == owner_app else None

    def urls(self, job: Job) -> dict[str, str]:
        base = f"{self.address}/{job.owner_app}/requests/{job.request_id}"
        return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    # --- the queue ------------------------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.Response:
        body = request[BODY]
        reply = self.next_reply()
        if reply.submit_status != 200:
            return self.error(reply.submit_status, reply.detail, reply.error_type, reply.headers)
        if not isinstance(body, dict):
            return self.error(422, [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}])
        required = reply.required if reply.required is not None else (("text",) if reply.kind == "audio"
                                                                      else ("prompt",))
        missing = [{"loc": ["body", name], "msg": "Field required", "type": "missing"}
                   for name in required if name not in body]
        if missing:
            return self.error(422, missing)
        model = request.match_info["model"].strip("/")
        job = Job(uuid.uuid4().hex, model, "/".join(model.split("/")[:2]), body, reply)
        self.jobs[job.request_id] = job
        urls = self.urls(job)
        if reply.foreign_urls:
            urls = {name: url.replace(self.address, "https://queue.fal.run") for name, url in urls.items()}
        return self.answer({"status": "IN_QUEUE", "request_id": job.request_id, **urls})

    async def status(self, request: web.Request) -> web.Response:
        job = self.job_for(request)
        if job is None:
            return self.error(404, "Request not found")
        look = job.looks
        job.looks += 1
        self.looked.set()
        if job.reply.status_delay:
            await asyncio.sleep(job.reply.status_delay)
        if look in job.reply.status_errors:
            return self.error(job.reply.status_errors[look], "Upstream status service unavailable")
        job.checks += 1
        urls = self.urls(job)
        if job.state == "IN_QUEUE":
            position = max(0, job.reply.queue_position - job.reply.states[:job.checks].count("IN_QUEUE") + 1)
            return self.answer({"status": "IN_QUEUE", "queue_position": position,
                                "response_url": urls["response_url"]}, 202)
        with_logs = request.query.get("logs") in ("1", "true")
        logs = [{"message": line, "level": "INFO", "source": "USER", "timestamp": "2025-01-01T00:00:00Z"}
                for line in job.reply.logs] if with_logs else None
        if job.state == "IN_PROGRESS":
            return self.answer({"status": "IN_PROGRESS", "logs": logs, "response_url": urls["response_url"]}, 202)
        error, error_type = None, None
        if job.cancelled:
            error, error_type = "Request was cancelled.", "request_cancelled"
        elif job.reply.result_status != 200:
            error, error_type = describe(job.reply.detail), job.reply.error_type
        return self.answer({"status": "COMPLETED", "logs": logs, "metrics": {"inference_time": 1.23},
                            "response_url": urls["response_url"], "error": error, "error_type": error_type})

    async def result(self, request: web.Request) -> web.Response:
        job = self.job_for(request)
        if job is None:
            return self.error(404, "Request not found")
        if job.cancelled:
            return self.error(400, "Request was cancelled.", "request_cancelled")
        if job.state != "COMPLETED":
            return self.error(400, "Request is still in progress")
        if job.reply.result_status != 200:
            return self.error(job.reply.result_status, job.reply.detail, job.reply.error_type)
        return self.answer(job.reply.output if job.reply.output is not None else self.output(job))

    async def cancel(self, request: web.Request) -> web.Response:
        job = self.job_for(request)
        if job is None:
            return self.answer({"status": "NOT_FOUND"}, 404)
        if job.state == "COMPLETED":
            return self.answer({"status": "ALREADY_COMPLETED"}, 400)
        job.cancelled = True
        return self.answer({"status": "CANCELLATION_REQUESTED"}, 202)

    # --- outputs --------------------------------------------------------------------------------

    def fal_file(self, name: str, content_type: str, content: bytes) -> dict[str, Any]:
        """A fal File (url, content_type, file_name, file_size), served from this fake."""
        return {"url": self.keep(name, content_type, content), "content_type": content_type, "file_name": name,
                "file_size": len(content)}

    def output(self, job: Job) -> dict[str, Any]:
        given = job.input
        if job.reply.kind == "video":
            seconds = seconds_asked(given.get("duration")) or job.reply.video_seconds
            video = self.fal_file(f"{job.request_id}.mp4", "video/mp4", media_samples.mp4(seconds))
            if job.reply.video_metadata:
                video.update(duration=seconds, width=1280, height=720, fps=24)
            return {"video": video, "seed": given.get("seed", 42)}
        if job.reply.kind == "audio":
            return {"audio": self.fal_file(f"{job.request_id}.wav", "audio/wav", media_samples.wav(1.0))}
        size = given.get("image_size", DEFAULT_IMAGE_SIZE)
        width, height = (size["width"], size["height"]) if isinstance(size, dict) else PRESETS[size]
        images = []
        for index in range(int(given.get("num_images", 1))):
            image = self.fal_file(f"{job.request_id}-{index}.png", "image/png", media_samples.png(width, height))
            images.append({**image, "width": width, "height": height})
        return {"images": images, "seed": given.get("seed", 42), "has_nsfw_concepts": [False] * len(images),
                "prompt": given["prompt"], "timings": {"inference": 1.2}}


def seconds_asked(duration: Any) -> float | None:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s?", str(duration)) if duration is not None else None
    return float(match.group(1)) if match else None


def describe(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(str(item.get("msg")) for item in detail if isinstance(item, dict))
    return str(detail)
