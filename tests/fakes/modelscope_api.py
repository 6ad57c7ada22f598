"""A fake ModelScope API-Inference (api-inference.modelscope.cn) over real HTTP on 127.0.0.1: the
async image-generation task API.

WIRE_FORMATS.md does not cover ModelScope; the facts this fake relies on, and where they come from
(ModelScope's API-Inference docs, "AIGC模型" page at modelscope.cn/docs/model-service/API-Inference,
whose example and parameter table are kept in FactrueSolin/image-edit-rmcp docs/魔搭生图docs.md; the
same calls in ZhuBaiwan-oOZZXX/modelscope-image2openai and rustectersehj226/zimage-skill):
- ``POST /v1/images/generations`` with ``Authorization: Bearer <token>``, ``Content-Type:
  application/json`` and ``X-ModelScope-Async-Mode: true``; body ``{model (ModelScope model id,
  required), prompt (required, < 2000 chars), negative_prompt, size "WxH" (Qwen-Image 64x64 to
  1664x1664, FLUX to 1024x1024), seed (0 to 2^31-1), steps (1-100), guidance (1.5-20), image_url
  (edit models), loras}`` -> ``{"task_id", "request_id"}``.
- ``GET /v1/tasks/{task_id}`` with ``X-ModelScope-Task-Type: image_generation`` -> ``{"task_id",
  "task_status": "PENDING" | "RUNNING" | "SUCCEED" | "FAILED", "output_images": [url, ...],
  "request_id"}``; a FAILED task carries ``errors: {code, message}``. Without the async header the
  submit is refused (the synchronous mode is not offered for these models), as is a look without the
  task-type header.
- Errors: an error status with ``{"errors": {"message"}, "request_id"}``: 401 for a bad token, 404
  for a model not served by API-Inference, 429 past the daily quota (2,000 calls a day).

Images are real PNGs of the size asked for, served at ``/files/{name}``. Tests script tasks with
``enqueue(Reply(...))``; each submit takes the next. Every request is recorded (method, path,
headers, body) and each task kept in ``tasks``.
"""

import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import media_samples
from tests.fakes.server import BODY, TaskApiServer, scripted_state

API_KEY = "ms-fake-modelscope-token"


@dataclass
class Reply:
    states: tuple[str, ...] = ("PENDING", "RUNNING", "SUCCEED")  # one per look
    status: int = 200  # the submit refused with this status
    message: str = "The fake ModelScope API refused as scripted."
    failure: dict[str, str] = field(default_factory=lambda: {"code": "InternalError",
                                                             "message": "The task failed as scripted."})


@dataclass
class Task:
    id: str
    body: dict
    reply: Reply
    looks: int = 0
    outputs: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return scripted_state(("PENDING", *self.reply.states), self.looks)


class FakeModelScope(TaskApiServer):
    thread_name = "fake-modelscope"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)
        self.tasks: dict[str, Task] = {}

    @property
    def base_url(self) -> str:
        return f"{self.address}/v1"

    def reset(self) -> None:
        super().reset()
        self.tasks.clear()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/images/generations", self.submit)
        router.add_get("/v1/tasks/{id}", self.look)

    @staticmethod
    def error(status: int, message: str) -> web.Response:
        return web.json_response({"errors": {"message": message}, "request_id": str(uuid.uuid4())}, status=status)

    def unauthorized(self) -> web.Response:
        return self.error(401, "Invalid token: please check your ModelScope access token.")

    async def submit(self, request: web.Request) -> web.Response:
        body = request[BODY]
        if request.headers.get("X-ModelScope-Async-Mode") != "true":
            return self.error(400, "This model only supports asynchronous calls: set X-ModelScope-Async-Mode: true.")
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.message)
        if not isinstance(body, dict) or not body.get("model") or not body.get("prompt"):
            return self.error(400, "model and prompt are required.")
        task = Task(uuid.uuid4().hex, body, reply)
        self.tasks[task.id] = task
        return web.json_response({"task_id": task.id, "request_id": str(uuid.uuid4())})

    async def look(self, request: web.Request) -> web.Response:
        if request.headers.get("X-ModelScope-Task-Type") != "image_generation":
            return self.error(400, "X-ModelScope-Task-Type is required.")
        task = self.tasks.get(request.match_info["id"])
        if task is None:
            return self.error(404, "Task not found.")
        task.looks += 1
        answer: dict[str, Any] = {"task_id": task.id, "task_status": task.status, "request_id": str(uuid.uuid4())}
        if task.status == "SUCCEED":
            if not task.outputs:
                width, _, height = str(task.body.get("size", "1024x1024")).partition("x")
                task.outputs = [self.keep(f"{task.id}.png", "image/png", media_samples.png(int(width), int(height)))]
            answer["output_images"] = task.outputs
        elif task.status == "FAILED":
            answer["errors"] = task.reply.failure
        return web.json_response(answer)
