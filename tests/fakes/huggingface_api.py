"""A fake Hugging Face Hub and Inference Providers router over real HTTP on 127.0.0.1 (one server
plays both hosts): the Hub's provider mapping, and fal-ai's queue and WaveSpeed's API behind the
router.

WIRE_FORMATS.md does not cover the router; the facts this fake relies on come from huggingface_hub
(InferenceClient, src/huggingface_hub/inference/_providers/, commit ee0a4510 of 2026-08-20):
- Mapping: ``GET /api/models/{model id}?expand=inferenceProviderMapping`` (HfApi.model_info with
  ``expand``) answers ``{"id", "inferenceProviderMapping": {provider: {"status": "live" | "staging" |
  "error", "providerId", "task"}}}``; hf_api.ModelInfo also reads the list form (objects with
  ``provider``). _common.TaskProviderHelper refuses a mapping whose task differs.
- Routing: with an ``hf_`` token the client calls ``https://router.huggingface.co/{provider}`` +
  the provider's own route (constants.INFERENCE_PROXY_TEMPLATE), ``Authorization: Bearer <token>``.
- fal-ai (fal_ai.py, FalAIQueueTask): image-to-image and image-to-video go to the queue: ``POST
  /fal-ai/{providerId}?_subdomain=queue`` with ``{image_url, image_urls (image-to-image), prompt,
  ...parameters}`` -> ``{request_id, response_url, status_url, cancel_url, status}``; then ``GET
  /fal-ai{path of response_url}/status?_subdomain=queue`` until ``{"status": "COMPLETED"}`` and
  ``GET /fal-ai{path}?_subdomain=queue`` for the output (``images[0].url`` / ``video.url``). fal's
  queue itself (WIRE_FORMATS 6): IN_QUEUE, IN_PROGRESS, COMPLETED; ``PUT .../cancel``.
- wavespeed (wavespeed.py): ``POST /wavespeed/api/v3/{providerId}`` with ``{image (URL or
  data:image/...;base64), prompt, ...}`` -> WaveSpeed's envelope with ``data.urls.get``; the client
  polls ``/wavespeed`` + the path of that URL (``/api/v3/predictions/{id}/result``) for
  ``data.status`` created / processing / completed (``outputs``) / failed (``error``).
- Router errors: ``{"error": "..."}``: 401 for a bad token, 402 when the account's credits are used up
  (the router's documented behaviour for Inference Providers billing), 404 for an unknown model.

Outputs are real bytes at ``/files/{name}``: PNGs (fal: of ``image_size`` if asked, else 64x64),
MP4s of the ``duration`` asked for (5 s by default). Tests set ``mappings`` per model and script
answers with ``enqueue(Reply(...))``; every request is recorded (method, path, query, headers, body).
"""

import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes import media_samples
from tests.fakes.server import BODY, TaskApiServer, scripted_state

API_KEY = "hf_fakeFakeFakeToken"
DEFAULT_MAPPINGS = {
    "Qwen/Qwen-Image-Edit": {"fal-ai": {"status": "live", "providerId": "fal-ai/qwen-image-edit",
                                        "task": "image-to-image"},
                             "wavespeed": {"status": "live", "providerId": "wavespeed-ai/qwen-image/edit",
                                           "task": "image-to-image"}},
    "black-forest-labs/FLUX.1-Kontext-dev": {"replicate": {"status": "live", "task": "image-to-image",
                                                           "providerId": "black-forest-labs/flux-kontext-dev"},
                                             "fal-ai": {"status": "live", "task": "image-to-image",
                                                        "providerId": "fal-ai/flux-kontext/dev"}},
    "Wan-AI/Wan2.2-I2V-A14B": {"fal-ai": {"status": "live", "providerId": "fal-ai/wan/v2.2-a14b/image-to-video",
                                          "task": "image-to-video"},
                               "wavespeed": {"status": "live", "providerId": "wavespeed-ai/wan-2.2/i2v-720p",
                                             "task": "image-to-video"}},
}


@dataclass
class Reply:
    states: tuple[str, ...] = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")  # fal: one per status check
    wavespeed_states: tuple[str, ...] = ("created", "processing", "completed")  # the submit's, then per look
    status: int = 200  # the submit refused with this status
    error: str = "The fake router refused as scripted."
    result_status: int = 200  # fal: the finished request's result answered with this status


@dataclass
class Job:
    id: str
    provider: str
    model: str
    input: dict
    reply: Reply
    looks: int = 0
    cancelled: bool = False
    outputs: Any = None

    @property
    def state(self) -> str:
        if self.provider == "fal-ai":
            return scripted_state(("IN_QUEUE", *self.reply.states), self.looks)
        return scripted_state(self.reply.wavespeed_states, self.looks)


class FakeHuggingFace(TaskApiServer):
    thread_name = "fake-huggingface"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)
        self.mappings: dict[str, dict] = {}
        self.jobs: dict[str, Job] = {}

    @property
    def base_url(self) -> str:
        return f"{self.address}/v1"  # the router's OpenAI-compatible root, as the catalog lists it

    def reset(self) -> None:
        super().reset()
        self.mappings = {model: dict(mapping) for model, mapping in DEFAULT_MAPPINGS.items()}
        self.jobs.clear()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/models/{owner}/{name}", self.model_info)
        router.add_get("/fal-ai/{owner}/{app}/requests/{id}/status", self.fal_status)
        router.add_get("/fal-ai/{owner}/{app}/requests/{id}", self.fal_result)
        router.add_put("/fal-ai/{owner}/{app}/requests/{id}/cancel", self.fal_cancel)
        router.add_post("/fal-ai/{model:.+}", self.fal_submit)
        router.add_get("/wavespeed/api/v3/predictions/{id}/result", self.wavespeed_result)
        router.add_post("/wavespeed/api/v3/{model:.+}", self.wavespeed_submit)

    # --- plumbing -------------------------------------------------------------------------------

    @staticmethod
    def error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    def unauthorized(self) -> web.Response:
        return self.error(401, "Invalid credentials in Authorization header")

    def outputs_for(self, job: Job) -> Any:
        if job.outputs is None:
            if "video" in job.model or "i2v" in job.model:
                seconds = float(job.input.get("duration") or 5)
                url = self.keep(f"{job.id}.mp4", "video/mp4", media_samples.mp4(seconds))
                job.outputs = {"video": {"url": url, "content_type": "video/mp4"}} if job.provider == "fal-ai" \
                    else [url]
            else:
                size = job.input.get("image_size") or {"width": 64, "height": 64}
                url = self.keep(f"{job.id}.png", "image/png", media_samples.png(size["width"], size["height"]))
                job.outputs = {"images": [{"url": url, "content_type": "image/png", "width": size["width"],
                                           "height": size["height"]}]} if job.provider == "fal-ai" else [url]
        return job.outputs

    # --- the Hub --------------------------------------------------------------------------------

    async def model_info(self, request: web.Request) -> web.Response:
        model = f"{request.match_info['owner']}/{request.match_info['name']}"
        if model not in self.mappings:
            return self.error(404, "Repository not found")
        answer: dict[str, Any] = {"_id": uuid.uuid4().hex[:24], "id": model}
        if request.query.get("expand") == "inferenceProviderMapping":
            answer["inferenceProviderMapping"] = self.mappings[model]
        return web.json_response(answer)

    # --- fal-ai behind the router ---------------------------------------------------------------

    def fal_urls(self, job: Job) -> dict[str, str]:
        owner_app = "/".join(job.model.split("/")[:2])
        base = f"https://queue.fal.run/{owner_app}/requests/{job.id}"  # fal's own URLs, as the router passes them
        return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    async def fal_submit(self, request: web.Request) -> web.Response:
        body = request[BODY]
        if request.query.get("_subdomain") != "queue":
            return self.error(400, "This model runs on the queue: add ?_subdomain=queue.")
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.error)
        if not isinstance(body, dict) or "prompt" not in body:
            return web.json_response({"detail": [{"loc": ["body", "prompt"], "msg": "field required",
                                                  "type": "value_error.missing"}]}, status=422)
        job = Job(uuid.uuid4().hex, "fal-ai", request.match_info["model"], body, reply)
        self.jobs[job.id] = job
        return web.json_response({"status": "IN_QUEUE", "request_id": job.id, **self.fal_urls(job)})

    def fal_job(self, request: web.Request) -> Job | None:
        return self.jobs.get(request.match_info["id"])

    async def fal_status(self, request: web.Request) -> web.Response:
        job = self.fal_job(request)
        if job is None:
            return self.error(404, "Request not found")
        job.looks += 1
        state = "COMPLETED" if job.cancelled else job.state
        # fal's status shapes (WIRE_FORMATS 6), passed through by the router: queue_position while
        # queued, logs (null unless asked for) after.
        answer: dict[str, Any] = {"status": state, "response_url": self.fal_urls(job)["response_url"]}
        if state == "IN_QUEUE":
            answer["queue_position"] = 0
        else:
            answer["logs"] = None
        return web.json_response(answer, status=200 if state == "COMPLETED" else 202)

    async def fal_result(self, request: web.Request) -> web.Response:
        job = self.fal_job(request)
        if job is None:
            return self.error(404, "Request not found")
        if job.reply.result_status != 200:
            return web.json_response({"detail": "The fake model failed as scripted."}, status=job.reply.result_status)
        return web.json_response(self.outputs_for(job))

    async def fal_cancel(self, request: web.Request) -> web.Response:
        job = self.fal_job(request)
        if job is None:
            return self.error(404, "Request not found")
        if job.state == "COMPLETED":
            return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)
        job.cancelled = True
        return web.json_response({"status": "CANCELLATION_REQUESTED"}, status=202)

    # --- WaveSpeed behind the router ------------------------------------------------------------

    def wavespeed_view(self, job: Job) -> dict[str, Any]:
        state = job.state
        return {"code": 200, "message": "success", "data": {
            "id": job.id, "model": job.model, "status": state,
            "outputs": self.outputs_for(job) if state == "completed" else [],
            "urls": {"get": f"https://api.wavespeed.ai/api/v3/predictions/{job.id}/result"},
            "error": "", "created_at": "2025-01-01T12:00:00.000Z"}}

    async def wavespeed_submit(self, request: web.Request) -> web.Response:
        body = request[BODY]
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.error)
        job = Job(uuid.uuid4().hex, "wavespeed", request.match_info["model"], body or {}, reply)
        self.jobs[job.id] = job
        return web.json_response(self.wavespeed_view(job))

    async def wavespeed_result(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return web.json_response({"code": 404, "message": "Prediction not found.", "data": None}, status=404)
        job.looks += 1
        return web.json_response(self.wavespeed_view(job))
