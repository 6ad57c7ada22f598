"""The Sora video routes of the fake OpenAI upstream (tests/fakes/openai_upstream.py).

WIRE_FORMATS.md section 3: ``POST /v1/videos`` (multipart or JSON), ``GET /v1/videos/{id}``,
``.../content`` and ``DELETE``, the jobs scripted on ``videos`` (tests/fakes/video_jobs.py).
"""

from aiohttp import web

from tests.fakes.video_jobs import FakeJob, VideoBook

SORA_MODELS = {"sora-2": {"720x1280", "1280x720"},
               "sora-2-pro": {"720x1280", "1280x720", "1024x1792", "1792x1024"}}
SORA_SECONDS = {"4", "8", "12"}
SORA_STATES = {"running": "in_progress", "completed": "completed", "failed": "failed", "cancelled": "failed"}


def sora_video(job: FakeJob) -> dict:
    state = job.state
    error = None
    if state == "failed":
        error = {"code": "moderation_blocked", "message": job.script.failure}
    return {"id": job.id, "object": "video", "model": job.body["model"], "status": SORA_STATES[state],
            "progress": int(job.progress * 100), "created_at": 1712697600, "size": job.body["size"],
            "seconds": job.body["seconds"], "completed_at": 1712697700 if state == "completed" else None,
            "expires_at": None, "error": error, "prompt": job.body["prompt"], "remixed_from_video_id": None}


async def sora_fields(request: web.Request) -> dict:
    """The create call's fields: multipart (what the SDK sends, input_reference as a file) or JSON."""
    if request.content_type == "multipart/form-data":
        form = await request.post()
        fields = {name: value for name, value in form.items() if name != "input_reference"}
        if "input_reference" in form:
            upload = form["input_reference"]
            fields["input_reference"] = {"filename": upload.filename, "content_type": upload.content_type,
                                         "bytes": len(upload.file.read())}
        return fields
    return await request.json()


class SoraVideos:
    """FakeOpenAI's Sora handlers (mixed in)."""

    videos: VideoBook

    def authorised(self, request: web.Request) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def create_video(self, request: web.Request) -> web.Response:
        fields = await sora_fields(request)
        self.videos.submissions.append({"headers": dict(request.headers), "body": fields})
        if not self.authorised(request):
            return self.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        fields.setdefault("seconds", "4")
        fields.setdefault("size", "720x1280")
        problem = None
        if not fields.get("prompt"):
            problem = "prompt is required"
        elif fields.get("model") not in SORA_MODELS:
            problem = f"Invalid model {fields.get('model')!r}"
        elif fields["seconds"] not in SORA_SECONDS:
            problem = f"Invalid value for seconds: {fields['seconds']!r}"
        elif fields["size"] not in SORA_MODELS[fields["model"]]:
            problem = f"Invalid value for size: {fields['size']!r}"
        if problem:
            return self.error(400, problem, "invalid_request_error", "invalid_value")
        script = self.videos.next_script()
        if script.submit_status != 200:
            return self.error(script.submit_status, script.submit_error,
                              "invalid_request_error" if script.submit_status < 500 else "server_error", None)
        job = self.videos.accept(fields, script)
        return web.json_response({**sora_video(job), "status": "queued", "progress": 0})

    async def retrieve_video(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return self.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        job = await self.videos.poll(request.match_info["id"])
        if job is None:
            return self.error(404, "Video not found.", "invalid_request_error", None)
        return web.json_response(sora_video(job))

    async def delete_video(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return self.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        job = self.videos.jobs.get(request.match_info["id"])
        if job is None:
            return self.error(404, "Video not found.", "invalid_request_error", None)
        job.cancelled = True
        return web.json_response({"id": job.id, "object": "video.deleted", "deleted": True})

    async def video_content(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return self.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        job = self.videos.jobs.get(request.match_info["id"])
        if job is None or job.state != "completed":
            return self.error(404, "Video is not ready.", "invalid_request_error", None)
        job.downloads += 1
        return web.Response(body=job.script.content, content_type="video/mp4")
