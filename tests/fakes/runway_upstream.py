"""A fake Runway API over real HTTP on 127.0.0.1.

It speaks ../shared/providers/WIRE_FORMATS.md section 7c:
- ``POST /v1/image_to_video`` (camelCase: model, promptImage, promptText, ratio "1280:720",
  duration, seed) -> ``{"id"}``; ``promptImage`` must be an https or data: URL (or the array form).
- ``GET /v1/tasks/{id}`` -> PENDING, then RUNNING with ``progress`` 0-1, then SUCCEEDED with
  ``output: [url]`` (a public link on this server), FAILED with ``failure``/``failureCode``, or
  CANCELLED; ``DELETE /v1/tasks/{id}`` cancels (204).
- ``Authorization: Bearer <key>`` and ``X-Runway-Version: 2024-11-06`` are required; errors are
  ``{"error": "..."}`` with the status.

Jobs are scripted on ``videos`` (tests/fakes/video_jobs.py).
"""

from aiohttp import web

from tests.fakes.server import ScriptedServer
from tests.fakes.video_jobs import VideoBook

API_KEY = "key_fake_runway"
API_VERSION = "2024-11-06"
RATIOS = {"gen4_turbo": {"1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"},
          "gen3a_turbo": {"1280:768", "768:1280"}}
FIELDS = {"model", "promptImage", "promptText", "ratio", "duration", "seed", "contentModeration", "negativePrompt"}


class FakeRunway(ScriptedServer):
    thread_name = "fake-runway"

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)
        self.videos = VideoBook(prefix="task")
        self.downloads: list[str] = []

    def reset(self) -> None:
        super().reset()
        self.videos.reset()
        self.downloads.clear()

    def release(self) -> None:
        self.videos.release(self.loop)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/image_to_video", self.image_to_video)
        app.router.add_get("/v1/tasks/{id}", self.task)
        app.router.add_delete("/v1/tasks/{id}", self.cancel)
        app.router.add_get("/outputs/{id}.mp4", self.output)
        return app

    @staticmethod
    def error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    def refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Invalid API key.")
        if request.headers.get("X-Runway-Version") != API_VERSION:
            return self.error(400, "The X-Runway-Version header is required (2024-11-06).")
        return None

    async def image_to_video(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.videos.submissions.append({"headers": dict(request.headers), "body": body})
        if refused := self.refused(request):
            return refused
        problem = self.check(body)
        if problem:
            return self.error(400, problem)
        script = self.videos.next_script()
        if script.submit_status != 200:
            return self.error(script.submit_status, script.submit_error)
        return web.json_response({"id": self.videos.accept(body, script).id})

    @staticmethod
    def check(body: dict) -> str | None:
        unknown = set(body) - FIELDS
        if unknown:
            return f"Unrecognized key(s) in object: '{sorted(unknown)[0]}'"
        if body.get("model") not in RATIOS:
            return f"Invalid model: {body.get('model')!r}"
        image = body.get("promptImage")
        if not isinstance(image, str) or not (image.startswith("https://") or image.startswith("data:image/")):
            return "promptImage must be an HTTPS URL or a data URI."
        if "ratio" in body and body["ratio"] not in RATIOS[body["model"]]:
            return f"Invalid ratio {body['ratio']!r} for {body['model']}"
        if body.get("duration", 5) not in (5, 10):
            return "duration must be 5 or 10"
        return None

    async def task(self, request: web.Request) -> web.Response:
        if refused := self.refused(request):
            return refused
        job = await self.videos.poll(request.match_info["id"])
        if job is None:
            return self.error(404, "Task not found.")
        task = {"id": job.id, "createdAt": "2024-06-27T19:49:32.335Z"}
        state = job.state
        if state == "running":
            task.update({"status": "RUNNING", "progress": round(job.progress, 2)} if job.polls > 1
                        else {"status": "PENDING"})
        elif state == "completed":
            task.update(status="SUCCEEDED", output=[f"{self.address}/outputs/{job.id}.mp4"])
        elif state == "failed":
            task.update(status="FAILED", failure=job.script.failure, failureCode="SAFETY.INPUT.TEXT")
        else:
            task.update(status="CANCELLED")
        return web.json_response(task)

    async def cancel(self, request: web.Request) -> web.Response:
        if refused := self.refused(request):
            return refused
        job = self.videos.jobs.get(request.match_info["id"])
        if job is None:
            return self.error(404, "Task not found.")
        job.cancelled = True
        return web.Response(status=204)

    async def output(self, request: web.Request) -> web.Response:
        job = self.videos.jobs.get(request.match_info["id"])
        self.downloads.append(request.match_info["id"])
        if job is None or job.state != "completed":
            return web.Response(status=404)
        job.downloads += 1
        return web.Response(body=job.script.content, content_type="video/mp4")
