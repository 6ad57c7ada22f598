"""A fake Replicate API (api.replicate.com) over real HTTP on 127.0.0.1.

It speaks ../shared/providers/WIRE_FORMATS.md section 7b:
- ``POST /v1/models/{owner}/{name}/predictions`` ``{"input"}``, ``POST /v1/predictions``
  ``{"version", "input"}``, ``POST /v1/deployments/{owner}/{name}/predictions`` create a prediction
  and answer 201 with it: ``{id, model, version, input, logs, output, error, status, created_at,
  started_at, completed_at, metrics, urls: {get, cancel, stream}}``.
- ``Prefer: wait`` / ``wait=N``: the 201 is already the finished prediction (``succeeded`` with its
  output, or ``failed``) unless the reply is scripted to outlast the wait; then it is ``starting``.
- ``GET /v1/predictions/{id}`` walks the scripted status sequence (starting, processing, then
  succeeded / failed), one status per look; ``metrics.predict_time`` appears on completion.
- ``POST /v1/predictions/{id}/cancel`` answers the prediction, ``canceled`` unless it had ended.
- ``Authorization: Bearer <token>``. Errors are RFC 7807 problem JSON ``{"type", "title", "status",
  "detail", "instance"}``; a 422 for input adds ``invalid_fields``.
- Output files are real bytes: PNGs of the width and height asked for at ``/files/{name}`` (as on
  replicate.delivery, no token), or, scripted, at ``/v1/files/{name}`` (the API's files, token needed);
  MP4s as long as the ``duration`` asked for.

Tests script predictions with ``enqueue(Reply(...))``; each create takes the next reply. Every HTTP
request is recorded (method, path, headers, body) and each prediction kept in ``predictions``.
"""

import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import media_samples
from tests.fakes.server import BODY, TaskApiServer, scripted_state

API_KEY = "r8_fake_replicate_token"
TERMINAL = {"succeeded", "failed", "canceled"}
CREATED_AT = "2025-01-01T00:00:00.000Z"


@dataclass
class Reply:
    kind: str = "image"  # what the model makes: image | video
    states: tuple[str, ...] = ("starting", "processing", "succeeded")  # the create's, then one per look
    outlasts_wait: bool = False  # a Prefer: wait create still answers the first state
    error: str | None = None  # the prediction fails with this error instead of succeeding
    output: Any = None  # the output as given, instead of files made from the input
    private_files: bool = False  # output files under the API's /v1/files (token needed)
    video_seconds: float = 5.0  # when the input asks for no duration
    logs: str = "Using seed: 42\n 25%|██▌       | 1/4\n 50%|█████     | 2/4"
    create_status: int = 201  # the create refused with this status
    title: str = "Internal Server Error"
    detail: str = "The fake Replicate API failed as scripted."
    headers: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ("prompt",)
    look_errors: dict[int, int] = field(default_factory=dict)  # look (0-based) -> its error status


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict
    reply: Reply
    looks: int = 0
    position: int = 0  # index into the reply's states
    canceled: bool = False
    output: Any = None

    @property
    def status(self) -> str:
        if self.canceled:
            return "canceled"
        state = scripted_state(self.reply.states, self.position)
        return "failed" if state == "succeeded" and self.reply.error else state


class FakeReplicate(TaskApiServer):
    thread_name = "fake-replicate"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)
        self.predictions: dict[str, Prediction] = {}

    def reset(self) -> None:
        super().reset()
        self.predictions.clear()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/models/{owner}/{name}/predictions", self.create)
        router.add_post("/v1/deployments/{owner}/{name}/predictions", self.create)
        router.add_post("/v1/predictions", self.create)
        router.add_get("/v1/predictions/{id}", self.get)
        router.add_post("/v1/predictions/{id}/cancel", self.cancel)
        router.add_get("/v1/files/{name}", self.private_file)

    # --- plumbing -------------------------------------------------------------------------------

    @staticmethod
    def problem(status: int, title: str, detail: str, headers=None, **more) -> web.Response:
        return web.json_response({"type": "https://replicate.com/docs/reference/http#errors", "title": title,
                                  "status": status, "detail": detail, "instance": None, **more},
                                 status=status, headers=headers, content_type="application/problem+json")

    def unauthorized(self) -> web.Response:
        return self.problem(401, "Unauthenticated", "You did not pass a valid authentication token")

    def view(self, prediction: Prediction) -> dict[str, Any]:
        status = prediction.status
        done = status in TERMINAL
        if status == "succeeded" and prediction.output is None:
            prediction.output = (prediction.reply.output if prediction.reply.output is not None
                                 else self.make_output(prediction))
        base = f"{self.address}/v1/predictions/{prediction.id}"
        return {
            "id": prediction.id, "model": prediction.model, "version": prediction.version, "input": prediction.input,
            "logs": prediction.reply.logs if status != "starting" else "",
            "output": prediction.output if status == "succeeded" else None,
            "error": prediction.reply.error if status == "failed" else None,
            "status": status, "created_at": CREATED_AT, "data_removed": False,
            "started_at": CREATED_AT if status != "starting" else None, "completed_at": CREATED_AT if done else None,
            "metrics": {"predict_time": 1.5} if status == "succeeded" else {},
            "urls": {"get": base, "cancel": f"{base}/cancel",
                     "stream": f"{self.address}/stream/{prediction.id}"},
        }

    # --- predictions ----------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        body = request[BODY]
        reply = self.next_reply()
        if reply.create_status != 201:
            return self.problem(reply.create_status, reply.title, reply.detail, reply.headers)
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return self.problem(422, "Invalid request body", "- (root): input is required")
        version = body.get("version", "")
        if request.path == "/v1/predictions" and not version:
            return self.problem(422, "Invalid request body", "- (root): version is required")
        missing = [name for name in reply.required if name not in body["input"]]
        if missing:
            return self.problem(422, "Input validation failed",
                                "".join(f"- input: {name} is required\n" for name in missing),
                                invalid_fields=[{"type": "required", "field": "input",
                                                 "description": f"{name} is required"} for name in missing])
        info = request.match_info
        model = f"{info['owner']}/{info['name']}" if "owner" in info else "owner/from-version"
        prediction = Prediction(uuid.uuid4().hex[:26], model, version or f"dp-{uuid.uuid4().hex}", body["input"], reply)
        self.predictions[prediction.id] = prediction
        if request.headers.get("Prefer", "").startswith("wait") and not reply.outlasts_wait:
            prediction.position = len(reply.states) - 1
        return web.json_response(self.view(prediction), status=201)

    async def get(self, request: web.Request) -> web.Response:
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None:
            return self.problem(404, "Not found", "The requested resource could not be found.")
        look = prediction.looks
        prediction.looks += 1
        if look in prediction.reply.look_errors:
            return self.problem(prediction.reply.look_errors[look], "Service Unavailable", "Try again shortly.")
        if prediction.status not in TERMINAL:
            prediction.position += 1
        return web.json_response(self.view(prediction))

    async def cancel(self, request: web.Request) -> web.Response:
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None:
            return self.problem(404, "Not found", "The requested resource could not be found.")
        if prediction.status not in TERMINAL:
            prediction.canceled = True
        return web.json_response(self.view(prediction))

    async def private_file(self, request: web.Request) -> web.Response:
        return (self.file_response(request.match_info["name"])
                or self.problem(404, "Not found", "The requested resource could not be found."))

    # --- outputs --------------------------------------------------------------------------------

    def keep_output(self, prediction: Prediction, name: str, content_type: str, content: bytes) -> str:
        return self.keep(name, content_type, content, route="v1/files" if prediction.reply.private_files else "files")

    def make_output(self, prediction: Prediction) -> Any:
        given = prediction.input
        if prediction.reply.kind == "video":
            seconds = float(given.get("duration") or prediction.reply.video_seconds)
            return self.keep_output(prediction, f"{prediction.id}.mp4", "video/mp4", media_samples.mp4(seconds))
        width, height = int(given.get("width", 1024)), int(given.get("height", 1024))
        return [self.keep_output(prediction, f"{prediction.id}-{index}.png", "image/png", media_samples.png(width, height))
                for index in range(int(given.get("num_outputs", 1)))]
