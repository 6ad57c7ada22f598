"""A fake Volcengine Ark API (ark.cn-beijing.volces.com/api/v3) over real HTTP on 127.0.0.1: Seedream
images and Seedance video tasks.

WIRE_FORMATS.md does not cover Ark; the facts this fake relies on, and where they come from:
- ``POST /api/v3/images/generations``, ``Authorization: Bearer <ARK_API_KEY>``, JSON ``{model,
  prompt, size ("1024x1024", or "2K" for Seedream 4), seed, guidance_scale, image (a URL or
  ``data:image/<fmt>;base64,...``; a list for Seedream 4), response_format (url | b64_json),
  watermark (default true), sequential_image_generation ("auto" | "disabled"),
  sequential_image_generation_options {max_images}}`` -> ``{model, created, data: [{url | b64_json,
  size: "WxH"}], usage: {generated_images, output_tokens, total_tokens}}`` (Ark's "Image generation
  API" and Seedream 4.0-4.5 tutorial, volcengine.com/docs/82379/1541523, as quoted in
  wangboy91/dify-plus doubaotoImage/api.md; the SDK volcenginesdkarkruntime ``images.generate``).
- ``POST /api/v3/contents/generations/tasks`` ``{model, content: [{type: "text", text: "<prompt>
  --resolution 720p --ratio 16:9 --duration 5 ..."}, {type: "image_url", image_url: {url}, role:
  "first_frame"}], callback_url?, return_last_frame?}`` -> ``{"id": "cgt-..."}``; the text commands
  (``--resolution/--rs``, ``--ratio/--rt``, ``--duration/--dur``, ``--framespersecond/--fps``,
  ``--watermark/--wm``, ``--seed``, ``--camerafixed/--cf``) set the output (Ark "创建视频生成任务 API",
  volcengine.com/docs/82379, as kept in bolecodex/volcano-ai-workshop docs/video.md).
- ``GET /api/v3/contents/generations/tasks/{id}`` -> ``{id, model, status: queued | running |
  cancelled | succeeded | failed, error: null | {code, message}, created_at, updated_at, content:
  {video_url}, seed, resolution, ratio, duration, framespersecond, usage: {completion_tokens,
  total_tokens}}``; ``DELETE`` on it cancels a queued task (a running one cannot be cancelled)
  ("查询视频生成任务 API", docs/video_task_info.md of the same repository; the SDK's
  ``content_generation.tasks.get/delete``).
- Errors: OpenAI's envelope ``{"error": {"code", "message", "param", "type"}}``: 401
  AuthenticationError, 404 InvalidEndpointOrModel.NotFound, 429 RateLimitExceeded, 400
  InvalidParameter and ``InputTextSensitiveContentDetected`` / ``OutputImageSensitiveContentDetected``.

Tokens of a Seedance video, as Ark counts them: width x height x frames / 1024, frames = 24 x
seconds + 1 (the docs' example: 720p 16:9, 5 s -> 108900). Files are served at ``/files/{name}``.
Tests script answers with ``enqueue(Reply(...))``; each create takes the next. Every request is
recorded (method, path, headers, body) and each task kept in ``tasks``.
"""

import base64
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import media_samples
from tests.fakes.server import BODY, TaskApiServer, scripted_state

API_KEY = "ark-fake-key-0000"
FRAMES = {("480p", "16:9"): (864, 480), ("720p", "16:9"): (1248, 704), ("1080p", "16:9"): (1920, 1088),
          ("720p", "9:16"): (704, 1248), ("720p", "1:1"): (960, 960)}
COMMAND = re.compile(r"--(\w+)\s+(\S+)")
ALIASES = {"rs": "resolution", "rt": "ratio", "dur": "duration", "fps": "framespersecond", "wm": "watermark",
           "cf": "camerafixed"}


@dataclass
class Reply:
    states: tuple[str, ...] = ("queued", "running", "succeeded")  # tasks: one per look
    status: int = 200  # the create refused with this status
    code: str = "InternalServiceError"
    message: str = "The fake Ark API failed as scripted."
    error_type: str = "BadRequest"
    task_error: dict[str, str] = field(default_factory=lambda: {
        "code": "InternalServiceError", "message": "The service encountered an unexpected internal error."})
    made: int | None = None  # images: how many Ark made (default: as many as asked)
    as_url: bool = False  # images answered as URLs rather than asked-for b64_json


@dataclass
class Task:
    id: str
    model: str
    content: list
    reply: Reply
    commands: dict[str, str]
    looks: int = 0
    cancelled: bool = False

    @property
    def status(self) -> str:
        if self.cancelled:
            return "cancelled"
        return scripted_state(("queued", *self.reply.states), self.looks)


class FakeArk(TaskApiServer):
    thread_name = "fake-ark"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)
        self.tasks: dict[str, Task] = {}

    @property
    def base_url(self) -> str:
        return f"{self.address}/api/v3"

    def reset(self) -> None:
        super().reset()
        self.tasks.clear()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/v3/images/generations", self.images)
        router.add_post("/api/v3/contents/generations/tasks", self.create_task)
        router.add_get("/api/v3/contents/generations/tasks/{id}", self.get_task)
        router.add_delete("/api/v3/contents/generations/tasks/{id}", self.delete_task)

    # --- plumbing -------------------------------------------------------------------------------

    @staticmethod
    def error(status: int, code: str, message: str, error_type: str = "BadRequest", param: str = "") -> web.Response:
        return web.json_response({"error": {"code": code, "message": message, "param": param, "type": error_type}},
                                 status=status)

    def unauthorized(self) -> web.Response:
        return self.error(401, "AuthenticationError", "The API key in the request is missing or invalid.",
                          "Unauthorized")

    # --- Seedream -------------------------------------------------------------------------------

    async def images(self, request: web.Request) -> web.Response:
        body = request[BODY]
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.code, reply.message, reply.error_type)
        if not isinstance(body, dict) or not body.get("model") or not body.get("prompt"):
            return self.error(400, "MissingParameter", "The request is missing model or prompt.", param="prompt")
        size = body.get("size", "1024x1024")
        width, _, height = size.partition("x") if "x" in size else ("2048", "", "2048")
        asked = (body.get("sequential_image_generation_options") or {}).get("max_images", 1) \
            if body.get("sequential_image_generation") == "auto" else 1
        made = reply.made if reply.made is not None else asked
        data = []
        for index in range(made):
            content = media_samples.png(int(width), int(height))
            if reply.as_url or body.get("response_format", "url") == "url":
                data.append({"url": self.keep(f"{uuid.uuid4().hex}-{index}.png", "image/png", content),
                             "size": f"{width}x{height}"})
            else:
                data.append({"b64_json": base64.b64encode(content).decode(), "size": f"{width}x{height}"})
        return web.json_response({"model": body["model"], "created": 1757321139, "data": data,
                                  "usage": {"generated_images": made, "output_tokens": 4096 * made,
                                            "total_tokens": 4096 * made}})

    # --- Seedance -------------------------------------------------------------------------------

    async def create_task(self, request: web.Request) -> web.Response:
        body = request[BODY]
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.code, reply.message, reply.error_type)
        content = body.get("content") if isinstance(body, dict) else None
        texts = [part.get("text", "") for part in content or () if part.get("type") == "text"]
        if not body.get("model") or not texts:
            return self.error(400, "MissingParameter", "content must hold a text part.", param="content")
        commands = {ALIASES.get(name, name): value for name, value in COMMAND.findall(texts[0])}
        task = Task(f"cgt-{uuid.uuid4().hex[:20]}", body["model"], content, reply, commands)
        self.tasks[task.id] = task
        return web.json_response({"id": task.id})

    def view(self, task: Task) -> dict[str, Any]:
        status = task.status
        resolution = task.commands.get("resolution", "720p")
        ratio = task.commands.get("ratio", "16:9")
        seconds = int(task.commands.get("duration", "5"))
        body: dict[str, Any] = {"id": task.id, "model": task.model, "status": status,
                                "error": task.reply.task_error if status == "failed" else None,
                                "created_at": 1743414619, "updated_at": 1743414673}
        if status == "succeeded":
            width, height = FRAMES.get((resolution, ratio), (1248, 704))
            tokens = width * height * (24 * seconds + 1) // 1024
            body.update(content={"video_url": self.keep(f"{task.id}.mp4", "video/mp4", media_samples.mp4(seconds))},
                        seed=int(task.commands.get("seed", "10")), resolution=resolution, ratio=ratio,
                        duration=seconds, framespersecond=24,
                        usage={"completion_tokens": tokens, "total_tokens": tokens})
        return body

    async def get_task(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["id"])
        if task is None:
            return self.error(404, "ResourceNotFound", "The specified task is not found.", "NotFound")
        if not task.cancelled:
            task.looks += 1
        return web.json_response(self.view(task))

    async def delete_task(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["id"])
        if task is None:
            return self.error(404, "ResourceNotFound", "The specified task is not found.", "NotFound")
        if task.status != "queued":
            return self.error(409, "InvalidAction.TaskNotCancellable",
                              f"The task in status {task.status} cannot be cancelled.", "Conflict")
        task.cancelled = True
        return web.json_response({})
