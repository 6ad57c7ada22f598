"""A fake Google Veo (Gemini API, Developer API) over real HTTP on 127.0.0.1.

It speaks ../shared/providers/WIRE_FORMATS.md section 5, Veo:
- ``POST /v1beta/models/{model}:predictLongRunning`` ``{"instances": [{"prompt", "image"?}],
  "parameters": {...}}`` -> an Operation ``{"name": "models/{model}/operations/{id}"}``. Like the
  Developer API it refuses unknown keys, and the ones the SDK refuses for it (seed, fps, ...).
- ``GET /v1beta/models/{model}/operations/{id}`` -> ``{"name", "done": false, "metadata"?}``, then
  ``done: true`` with ``response.generateVideoResponse.generatedSamples[0].video.uri`` (a
  ``files/{id}:download?alt=media`` link on this server, which needs the key too), or with
  ``error {code, message}``; a job all filtered by safety finishes with no samples and
  ``raiMediaFilteredReasons``.
- ``x-goog-api-key``; a wrong key is the 400 INVALID_ARGUMENT / API_KEY_INVALID quirk.

Jobs are scripted on ``videos`` (tests/fakes/video_jobs.py); outcome "filtered" finishes
without a video.
"""

from aiohttp import web

from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.server import ScriptedServer
from tests.fakes.video_jobs import FakeJob, VideoBook

API_KEY = "AIza-fake-veo-key"
INSTANCE_KEYS = {"prompt", "image", "lastFrame", "referenceImages", "video"}
PARAMETER_KEYS = {"aspectRatio", "durationSeconds", "negativePrompt", "personGeneration", "resolution", "sampleCount",
                  "enhancePrompt"}
MODELS = {"veo-3.1-generate-preview", "veo-3.1-fast-generate-preview", "veo-2.0-generate-001"}


class FakeVeo(ScriptedServer):
    thread_name = "fake-veo"

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)
        self.videos = VideoBook(prefix="op")
        self.file_requests: list[dict] = []

    @property
    def base_url(self) -> str:
        return self.address

    def reset(self) -> None:
        super().reset()
        self.videos.reset()
        self.file_requests.clear()

    def release(self) -> None:
        self.videos.release(self.loop)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1beta/models/{model_action}", self.predict)
        app.router.add_get("/v1beta/models/{model}/operations/{id}", self.operation)
        app.router.add_get("/v1beta/files/{file_action}", self.download)
        return app

    error = staticmethod(FakeGemini.error)
    key_refused = FakeGemini.key_refused

    async def predict(self, request: web.Request) -> web.Response:
        model, _, action = request.match_info["model_action"].rpartition(":")
        body = await request.json()
        self.videos.submissions.append({"model": model, "headers": dict(request.headers), "body": body})
        if refused := self.key_refused(request):
            return refused
        if action != "predictLongRunning" or model not in MODELS:
            return self.error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta.")
        problem = self.check(body)
        if problem:
            return self.error(400, "INVALID_ARGUMENT", problem)
        script = self.videos.next_script()
        if script.submit_status != 200:
            status = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 500: "INTERNAL"}.get(script.submit_status,
                                                                                        "INVALID_ARGUMENT")
            return self.error(script.submit_status, status, script.submit_error)
        job = self.videos.accept({"model": model, **body}, script)
        return web.json_response({"name": f"models/{model}/operations/{job.id}"})

    @staticmethod
    def check(body) -> str | None:
        instances = body.get("instances") if isinstance(body, dict) else None
        if not instances or not instances[0].get("prompt"):
            return "* instances[0].prompt: a prompt is required."
        for key in instances[0]:
            if key not in INSTANCE_KEYS:
                return f'Invalid JSON payload received. Unknown name "{key}" at \'instances[0]\': Cannot find field.'
        image = instances[0].get("image")
        if image is not None and not (image.get("bytesBase64Encoded") and image.get("mimeType")):
            return "* instances[0].image: bytesBase64Encoded and mimeType are required."
        for key in body.get("parameters") or {}:
            if key not in PARAMETER_KEYS:
                return f'Invalid JSON payload received. Unknown name "{key}" at \'parameters\': Cannot find field.'
        return None

    async def operation(self, request: web.Request) -> web.Response:
        if refused := self.key_refused(request):
            return refused
        name = f"models/{request.match_info['model']}/operations/{request.match_info['id']}"
        job = await self.videos.poll(request.match_info["id"])
        if job is None:
            return self.error(404, "NOT_FOUND", f"Operation {name} not found.")
        return web.json_response(self.describe(name, job, request))

    def describe(self, name: str, job: FakeJob, request: web.Request) -> dict:
        state = job.state
        if state == "running":
            return {"name": name, "done": False, "metadata": {"@type": "type.googleapis.com/google.ai."
                                                              "generativelanguage.v1beta.PredictLongRunningMetadata"}}
        if state in ("failed", "cancelled"):
            return {"name": name, "done": True, "error": {"code": 3, "message": job.script.failure}}
        if state == "filtered":
            return {"name": name, "done": True, "response": {"generateVideoResponse": {
                "raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [job.script.failure]}}}
        uri = f"{self.address}/v1beta/files/{job.id}:download?alt=media"
        return {"name": name, "done": True, "response": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
            "generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}], "raiMediaFilteredCount": 0}}}

    async def download(self, request: web.Request) -> web.Response:
        file_id, _, action = request.match_info["file_action"].rpartition(":")
        self.file_requests.append({"file": file_id, "headers": dict(request.headers), "query": dict(request.query)})
        if refused := self.key_refused(request):
            return refused
        job = self.videos.jobs.get(file_id)
        if action != "download" or job is None or job.state != "completed":
            return self.error(404, "NOT_FOUND", f"File files/{file_id} not found.")
        job.downloads += 1
        return web.Response(body=job.script.content, content_type="video/mp4")
