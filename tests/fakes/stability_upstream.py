"""A fake Stability AI v2beta Stable Image API over real HTTP on 127.0.0.1.

WIRE_FORMATS.md section 7a: ``POST /v2beta/stable-image/generate/{ultra|core|sd3}``,
``Authorization: Bearer``, multipart/form-data only (anything else is refused, as Stability
does), ``Accept: application/json`` -> ``{"image": <base64>, "finish_reason", "seed"}`` or
``Accept: image/*`` -> the bytes with ``finish-reason`` and ``seed`` headers. It checks the fields
as the API does: prompt required, aspect_ratio and output_format from their lists, ``model`` only
on sd3 (one of the SD 3.5 models), image-to-image with ``image`` and ``strength`` (``mode`` on sd3).
Errors are ``{"id", "name", "errors": [...]}``.

Tests script it with ``enqueue(Reply(...))``; every request is recorded (route, headers, fields,
files).
"""

import base64
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.png import make_png
from tests.fakes.server import ScriptedServer

API_KEY = "sk-fake-stability"
ASPECT_RATIOS = {"16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21"}
SD3_MODELS = {"sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium"}
FORMATS = {"ultra": {"png", "jpeg", "webp"}, "core": {"png", "jpeg", "webp"}, "sd3": {"png", "jpeg"}}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass
class Reply:
    status: int = 200
    name: str = "server_error"
    errors: list[str] = field(default_factory=lambda: ["The fake upstream failed as scripted."])
    finish_reason: str = "SUCCESS"
    seed: int = 42
    headers: dict[str, str] = field(default_factory=dict)


class FakeStability(ScriptedServer):
    thread_name = "fake-stability"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2beta/stable-image/generate/{route}", self.generate)
        return app

    @staticmethod
    def error(status: int, name: str, problems: list[str], headers=None) -> web.Response:
        return web.json_response({"id": uuid.uuid4().hex, "name": name, "errors": problems}, status=status,
                                 headers=headers)

    async def generate(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        fields, files = {}, {}
        if request.content_type == "multipart/form-data":
            for name, value in (await request.post()).items():
                if name == "none":
                    continue  # the empty part that makes a form without files multipart
                if hasattr(value, "file"):
                    files[name] = value.file.read()
                else:
                    fields[name] = value
        self.requests.append({"route": route, "headers": dict(request.headers), "content_type": request.content_type,
                              "fields": fields, "files": files})
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401, "unauthorized", ["authorization: invalid or missing API key"])
        if route not in FORMATS:
            return self.error(404, "not_found", [f"route {route} not found"])
        if request.content_type != "multipart/form-data":
            return self.error(400, "bad_request", ["content-type: must be multipart/form-data"])
        problem = self.refusal(route, fields, files)
        if problem:
            return self.error(400, "bad_request", [problem])
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.name, reply.errors, reply.headers)
        output_format = fields.get("output_format", "png")
        image = make_png(6, 6, (90, 160, 60))
        if request.headers.get("Accept", "").startswith("image/"):
            return web.Response(body=image, content_type=CONTENT_TYPES[output_format],
                                headers={"finish-reason": reply.finish_reason, "seed": str(reply.seed)})
        if request.headers.get("Accept") != "application/json":
            return self.error(400, "bad_request", ["accept: must be image/* or application/json"])
        body = {"image": "" if reply.finish_reason == "CONTENT_FILTERED" else base64.b64encode(image).decode(),
                "finish_reason": reply.finish_reason, "seed": reply.seed}
        return web.json_response(body)

    @staticmethod
    def refusal(route: str, fields: dict, files: dict) -> str | None:
        if not fields.get("prompt"):
            return "prompt: cannot be empty"
        if "aspect_ratio" in fields and fields["aspect_ratio"] not in ASPECT_RATIOS:
            return f"aspect_ratio: must be one of {sorted(ASPECT_RATIOS)}"
        if "output_format" in fields and fields["output_format"] not in FORMATS[route]:
            return f"output_format: must be one of {sorted(FORMATS[route])}"
        if route == "sd3":
            if fields.get("model", "sd3.5-large") not in SD3_MODELS:
                return f"model: must be one of {sorted(SD3_MODELS)}"
            if fields.get("mode", "text-to-image") == "image-to-image" and not ("image" in files and "strength" in fields):
                return "image-to-image mode needs image and strength"
        elif "model" in fields:
            return "model: not allowed on this route"
        if "seed" in fields and not 0 <= int(fields["seed"]) <= 4294967294:
            return "seed: must be between 0 and 4294967294"
        return None
