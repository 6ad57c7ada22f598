"""The OpenAI Images API routes of the fake OpenAI upstream (tests/fakes/openai_upstream.py).

WIRE_FORMATS.md section 3: ``POST /v1/images/generations`` (JSON) and ``POST /v1/images/edits``
(multipart: ``image`` or ``image[]``, ``mask``, and the other fields as form fields). Like the
real API they refuse what the model does not take (400 ``invalid_request_error``): a size not the
model's, n other than 1 for dall-e-3, style off dall-e-3, ``response_format`` on GPT image models,
quality words of another model. Answers: dall-e models ``url`` (served by this fake at
/v1/images/files/<name>, as OpenAI's expiring blob URLs) or ``b64_json``, with ``revised_prompt``
from dall-e-3; GPT image models always ``b64_json`` with ``size``, ``quality``, ``output_format``,
``background`` and token ``usage`` (output tokens per image as OpenAI's table).

``POST /v1/images/variations`` (multipart), as OpenAI's API reference and the openai SDK's
``images.create_variation`` describe it: ``image`` (required: "a valid PNG file, less than 4MB, and
square"), ``model`` (only ``dall-e-2``, the default), ``n`` (1-10), ``size`` (dall-e-2's:
256x256, 512x512 or 1024x1024, the default), ``response_format`` (``url``, the default, or
``b64_json``) and ``user``; no prompt. It answers the same ``{created, data: [{url} | {b64_json}]}``
as a dall-e-2 generation. It refuses (400) another model, an image that is not a square PNG, and
fields it does not take (prompt, quality, ...), as "Unrecognized request argument supplied".

Tests script them with ``fake_openai.enqueue(ImageReply(...))`` (a chat ``Reply`` with an error
status works too); unscripted requests get the default image.
"""

import base64
import functools
import struct
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.png import make_png

SIZES = {"dall-e-2": ["256x256", "512x512", "1024x1024"],
         "dall-e-3": ["1024x1024", "1792x1024", "1024x1792"],
         "gpt-image": ["1024x1024", "1536x1024", "1024x1536", "auto"]}
QUALITIES = {"dall-e-2": ["standard"], "dall-e-3": ["standard", "hd"], "gpt-image": ["low", "medium", "high", "auto"]}
PROMPT_LIMITS = {"dall-e-2": 1000, "dall-e-3": 4000, "gpt-image": 32000}
GPT_IMAGE_ONLY = ("background", "output_format", "output_compression", "moderation", "partial_images", "stream")
OUTPUT_TOKENS = {("1024x1024", "low"): 272, ("1024x1024", "medium"): 1056, ("1024x1024", "high"): 4160,
                 ("1536x1024", "low"): 400, ("1536x1024", "medium"): 1568, ("1536x1024", "high"): 6208,
                 ("1024x1536", "low"): 408, ("1024x1536", "medium"): 1584, ("1024x1536", "high"): 6240}
INPUT_IMAGE_TOKENS = 323
VARIATION_FIELDS = {"model", "n", "response_format", "size", "user"}
MAX_VARIATION_IMAGE_BYTES = 4 * 1024 * 1024


@dataclass
class ImageReply:
    status: int = 200
    error_type: str = "invalid_request_error"
    error_code: str | None = None
    error_message: str = "The fake upstream failed as scripted."
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # answer only after FakeOpenAI.release()
    revised_prompt: str = "A revised prompt from the fake."
    usage: dict | None = None  # override a GPT image model's usage
    answer_size: str = "1024x1024"  # what a GPT image model says it made for size "auto"
    answer_quality: str = "high"  # ... and for quality "auto"


def family(model: str) -> str:
    return "gpt-image" if model.startswith(("gpt-image", "chatgpt-image")) else model


def invalid(fake, message: str, param: str | None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": "invalid_value"}}
    return web.json_response(body, status=400, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})


def refusal(fields: dict, inputs: int) -> tuple[str, str | None] | None:
    """What the real API would refuse in these fields: (message, param), or None."""
    model = family(str(fields.get("model") or "dall-e-2"))
    if model not in SIZES:
        return f"Invalid model {fields.get('model')!r}.", "model"
    prompt = fields.get("prompt")
    if not prompt:
        return "prompt is required.", "prompt"
    if len(prompt) > PROMPT_LIMITS[model]:
        return f"prompt is longer than {PROMPT_LIMITS[model]} characters.", "prompt"
    n = int(fields.get("n") or 1)
    if not 1 <= n <= 10 or (model == "dall-e-3" and n != 1):
        return f"Invalid n {n} for {model}.", "n"
    size = fields.get("size")
    if size is not None and size not in SIZES[model]:
        return f"Invalid size {size!r}; supported sizes are {', '.join(SIZES[model])}.", "size"
    quality = fields.get("quality")
    if quality is not None and quality not in QUALITIES[model]:
        return f"Invalid quality {quality!r} for {model}.", "quality"
    if fields.get("style") is not None and model != "dall-e-3":
        return "style is only supported for dall-e-3.", "style"
    if model == "gpt-image":
        if "response_format" in fields:
            return "Unknown parameter: 'response_format'.", "response_format"
    else:
        extra = next((name for name in GPT_IMAGE_ONLY if name in fields), None)
        if extra:
            return f"Unknown parameter: '{extra}'.", extra
        if inputs > 1:
            return f"{model} edits one image.", "image"
    return None


async def read_fields(request: web.Request) -> tuple[dict, list[dict]]:
    """JSON fields, or a multipart form's fields and files (name, filename, type, size)."""
    if request.content_type == "application/json":
        return await request.json(), []
    form = await request.post()
    fields, files = {}, []
    for name, value in form.items():
        if hasattr(value, "file"):
            content = value.file.read()
            files.append({"field": name, "filename": value.filename, "content_type": value.content_type,
                          "size": len(content), "content": content})
        else:
            fields[name] = value
    return fields, files


async def images(fake, request: web.Request, *, route: str) -> web.Response:
    fields, files = await read_fields(request)
    fake.requests.append({"path": request.path, "headers": dict(request.headers), "body": fields, "files": files,
                          "at": time.monotonic()})
    if fake.api_key is not None and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return fake.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    reply = await scripted_reply(fake)
    if reply.status != 200:
        return fake.error(reply.status, reply.error_message, reply.error_type, reply.error_code, reply.headers)
    inputs = [item for item in files if item["field"] in ("image", "image[]")]
    if route == "edits" and not inputs:
        return invalid(fake, "image is required.", "image")
    problem = refusal(fields, len(inputs))
    if problem:
        return invalid(fake, *problem)
    model = family(str(fields.get("model") or "dall-e-2"))
    n = int(fields.get("n") or 1)
    png = make_png(4, 4, (30, 120, 200))
    answer: dict = {"created": int(time.time())}
    if model == "gpt-image":
        size = fields.get("size", "auto")
        size = reply.answer_size if size == "auto" else size
        quality = fields.get("quality", "auto")
        quality = reply.answer_quality if quality == "auto" else quality
        prompt_tokens = len(fields["prompt"].split())
        input_tokens = prompt_tokens + INPUT_IMAGE_TOKENS * len(inputs)
        output_tokens = n * OUTPUT_TOKENS[(size, quality)]
        answer["data"] = [{"b64_json": base64.b64encode(png).decode()} for _ in range(n)]
        answer.update({"background": fields.get("background", "opaque"), "output_format": fields.get(
            "output_format", "png"), "quality": quality, "size": size})
        answer["usage"] = reply.usage or {
            "input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens,
            "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": INPUT_IMAGE_TOKENS * len(inputs)}}
        return web.json_response(answer)
    entries = dall_e_images(fake, fields, n)
    if model == "dall-e-3":
        for entry in entries:
            entry["revised_prompt"] = reply.revised_prompt
    answer["data"] = entries
    return web.json_response(answer)


async def scripted_reply(fake) -> ImageReply:
    """The next reply (a chat Reply scripted for an error becomes an ImageReply), once released if held."""
    reply = fake.next_reply()
    if not isinstance(reply, ImageReply):
        reply = ImageReply(status=reply.status, error_type=reply.error_type, error_code=reply.error_code,
                           error_message=reply.error_message, headers=reply.headers, hold=reply.hold)
    if reply.hold:
        await fake._gate().wait()
    return reply


def dall_e_images(fake, fields: dict, n: int) -> list[dict]:
    """n images as dall-e answers them: URLs this fake serves (the default) or b64_json."""
    png = make_png(4, 4, (30, 120, 200))
    entries = []
    for _ in range(n):
        if fields.get("response_format", "url") == "b64_json":
            entries.append({"b64_json": base64.b64encode(png).decode()})
        else:
            name = f"{uuid.uuid4().hex}.png"
            fake.image_files[name] = png
            entries.append({"url": f"{fake.base_url}/images/files/{name}"})
    return entries


def is_square_png(content: bytes) -> bool:
    if len(content) > MAX_VARIATION_IMAGE_BYTES or content[:8] != b"\x89PNG\r\n\x1a\n" or content[12:16] != b"IHDR":
        return False
    width, height = struct.unpack(">II", content[16:24])
    return width == height


def variation_refusal(fields: dict, files: list[dict]) -> tuple[str, str | None] | None:
    image = next((item for item in files if item["field"] == "image"), None)
    if image is None:
        return "image is required.", "image"
    if fields.get("model", "dall-e-2") != "dall-e-2":
        return f"Invalid model {fields.get('model')!r}: image variations are made by dall-e-2 only.", "model"
    unknown = sorted(set(fields) - VARIATION_FIELDS)
    if unknown:
        return f"Unrecognized request argument supplied: {', '.join(unknown)}", unknown[0]
    if not is_square_png(image["content"]):
        return "Invalid image: it must be a valid PNG file, less than 4MB, and square.", "image"
    n = int(fields.get("n") or 1)
    if not 1 <= n <= 10:
        return f"Invalid n {n}: it must be between 1 and 10.", "n"
    size = fields.get("size")
    if size is not None and size not in SIZES["dall-e-2"]:
        return f"Invalid size {size!r}; supported sizes are {', '.join(SIZES['dall-e-2'])}.", "size"
    if fields.get("response_format", "url") not in ("url", "b64_json"):
        return f"Invalid response_format {fields['response_format']!r}.", "response_format"
    return None


async def variations(fake, request: web.Request) -> web.Response:
    fields, files = await read_fields(request)
    fake.requests.append({"path": request.path, "headers": dict(request.headers), "body": fields, "files": files,
                          "at": time.monotonic()})
    if fake.api_key is not None and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return fake.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    reply = await scripted_reply(fake)
    if reply.status != 200:
        return fake.error(reply.status, reply.error_message, reply.error_type, reply.error_code, reply.headers)
    problem = variation_refusal(fields, files)
    if problem:
        return invalid(fake, *problem)
    return web.json_response({"created": int(time.time()),
                              "data": dall_e_images(fake, fields, int(fields.get("n") or 1))})


async def image_file(fake, request: web.Request) -> web.Response:
    content = fake.image_files.get(request.match_info["name"])
    if content is None:
        return web.Response(status=404, text="BlobNotFound")
    return web.Response(body=content, content_type="image/png")


def add_image_routes(app: web.Application, fake) -> None:
    fake.image_files = {}
    app.router.add_post("/v1/images/generations", functools.partial(images, fake, route="generations"))
    app.router.add_post("/v1/images/edits", functools.partial(images, fake, route="edits"))
    app.router.add_post("/v1/images/variations", functools.partial(variations, fake))
    app.router.add_get("/v1/images/files/{name}", functools.partial(image_file, fake))
