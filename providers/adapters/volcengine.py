"""Volcengine Ark (Doubao; BytePlus ModelArk abroad): Seedream images and Seedance video tasks.
Chat on Ark is OpenAI's shape and goes to the OpenAI-compatible adapter.

    images   POST {base_url}/images/generations          {model, prompt, size, seed, guidance_scale,
                                                         image (image-to-image: a URL or a data: URL;
                                                         Seedream 4 takes a list), response_format,
                                                         watermark, sequential_image_generation}
                                                         -> {model, created, data: [{b64_json | url,
                                                         size}], usage: {generated_images,
                                                         output_tokens, total_tokens}}
    video    POST {base_url}/contents/generations/tasks  {model, content: [{type: text, text:
                                                         "<prompt> --resolution 720p --ratio 16:9
                                                         --duration 5 --seed 7 --watermark false"},
                                                         {type: image_url, image_url: {url}, role:
                                                         first_frame}]} -> {id}
             GET  {base_url}/contents/generations/tasks/{id}   status queued | running | succeeded
                                                         (content.video_url, duration, resolution,
                                                         ratio, usage.completion_tokens) | failed
                                                         (error {code, message}) | cancelled
             DELETE {base_url}/contents/generations/tasks/{id} cancels a queued task
    auth     Authorization: Bearer <ARK_API_KEY>

The base URL is https://ark.cn-beijing.volces.com/api/v3 (BytePlus: ark.ap-southeast.bytepluses.com);
the upstream model name is Ark's model id (``doubao-seedream-4-0-250828``) or an endpoint id (``ep-...``).

Images: n above 1 asks Seedream 4 for a group (``sequential_image_generation: auto`` with
``max_images``); Ark says how many it made (``usage.generated_images``), which is what is billed.
Images come back inline (``response_format: b64_json``). Watermarks are off unless the model
declares ``watermark`` among its extras and the client asks. Video: Seedance's output settings are
text commands after the prompt; the video is billed by the seconds Ark reports it made, at the
resolution it reports.

Errors are OpenAI's envelope ``{"error": {"code", "message", "param", "type"}}``, mapped as the
OpenAI-compatible adapter maps them; Ark's ``...SensitiveContentDetected`` codes (the input or the
output refused by moderation) are ContentFiltered. A failed task carries the same ``error`` object.
"""

import base64
import binascii
import json
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from providers import errors
from providers.adapters.compatible_chat import OpenAICompatibleChat
from providers.adapters.http_calls import (
    fetch_json,
    job_error_mapper,
    json_request,
    transport_error,
)
from providers.adapters.openai import errors as openai_errors
from providers.adapters.queue import media_url, requested_resolution, size_ratio
from providers.http import get_client
from providers.media_types import (
    GeneratedMedia,
    ImageRequest,
    ImageResult,
    VideoJobState,
    VideoRequest,
)
from providers.types import Target, Usage

STATUSES = {"queued": "queued", "running": "in_progress", "succeeded": "completed", "failed": "failed",
            "cancelled": "cancelled"}
FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class VolcengineAdapter(OpenAICompatibleChat):
    OPERATIONS = frozenset({"complete", "stream", "generate_images", "edit_images", "submit_video", "poll_video", "cancel_video"})

    wire_format = "volcengine"

    async def generate_images(self, request: ImageRequest, target: Target) -> ImageResult:
        return await make_images(request, target)

    async def edit_images(self, request: ImageRequest, target: Target) -> ImageResult:
        if not request.images:
            raise errors.ProviderBadRequest("An image edit needs the image to change.", provider=target.provider)
        return await make_images(request, target)

    async def submit_video(self, request: VideoRequest, target: Target) -> VideoJobState:
        task = await fetch_json(json_request("POST", task_url(target), target, body=task_body(request, target)),
                                target, error_from_response)
        if not isinstance(task, dict) or not task.get("id"):
            raise errors.ProviderUnavailable(f"{target.provider} answered without a task id.", provider=target.provider)
        handle = {"id": task["id"], "seconds": request.duration_seconds, "resolution": requested_resolution(request)}
        return VideoJobState(status="queued", handle=handle, progress=0, upstream_model=target.upstream_model)

    async def poll_video(self, state: VideoJobState, target: Target) -> VideoJobState:
        try:
            task = await fetch_json(json_request("GET", task_url(target, state.handle["id"]), target), target,
                                    task_error)
        except errors.ProviderNotFound as error:
            return VideoJobState(status="failed", handle=state.handle, error=error.message,
                                 upstream_model=target.upstream_model)
        return state_of(task, state.handle, target)

    def can_cancel_video(self, state: VideoJobState) -> bool:
        return state.status == "queued"  # Ark stops a queued task only; a running one goes on, billed

    async def cancel_video(self, state: VideoJobState, target: Target) -> None:
        try:
            response = await get_client().send(json_request("DELETE", task_url(target, state.handle["id"]), target))
        except httpx.TransportError as exc:
            raise transport_error(exc, target) from exc
        # Ark cancels only a queued task; a running or finished one (4xx) has nothing to stop.
        if response.status_code >= 500:
            raise error_from_response(response.status_code, response.headers, response.content, target)


# --- requests -----------------------------------------------------------------------------------

def task_url(target: Target, task_id: str | None = None) -> str:
    url = f"{target.base_url.rstrip('/')}/contents/generations/tasks"
    return f"{url}/{quote(task_id)}" if task_id else url


# --- Seedream -----------------------------------------------------------------------------------

def image_body(request: ImageRequest, target: Target) -> dict[str, Any]:
    body: dict[str, Any] = {"model": target.upstream_model, "prompt": request.prompt,
                            "response_format": "b64_json", "watermark": False}
    optional = {"size": request.size, "seed": request.seed, "guidance_scale": request.guidance_scale}
    body.update({name: value for name, value in optional.items() if value is not None})
    if request.n > 1:
        body.update(sequential_image_generation="auto", sequential_image_generation_options={"max_images": request.n})
    if request.images:
        urls = [media_url(image) for image in request.images]
        body["image"] = urls[0] if len(urls) == 1 else urls
    body.update(request.extra)
    return body


async def make_images(request: ImageRequest, target: Target) -> ImageResult:
    url = f"{target.base_url.rstrip('/')}/images/generations"
    answer = await fetch_json(json_request("POST", url, target, body=image_body(request, target)), target,
                              error_from_response)
    data = answer.get("data") if isinstance(answer, dict) else None
    images = [image for item in data or () if (image := image_of(item, request, target))]
    if not images:
        raise errors.ProviderUnavailable(f"{target.provider} answered without an image.", provider=target.provider)
    made = (answer.get("usage") or {}).get("generated_images")
    sizes = [item.get("size") for item in data if isinstance(item, dict)]
    detail = request.size or next((size for size in sizes if size), "")
    return ImageResult(images=images, usage=Usage(images=int(made or len(images)), media_detail=detail),
                       upstream_model=target.upstream_model)


def image_of(item: Any, request: ImageRequest, target: Target) -> GeneratedMedia | None:
    if not isinstance(item, dict):
        return None
    content_type = FORMATS.get(request.output_format or "jpeg", "image/jpeg")
    if item.get("b64_json"):
        try:
            return GeneratedMedia(content_type=content_type, content=base64.b64decode(item["b64_json"], validate=True))
        except (binascii.Error, ValueError) as exc:
            raise errors.ProviderUnavailable(f"{target.provider} sent an image that is not base64.",
                                             provider=target.provider) from exc
    if item.get("url"):
        return GeneratedMedia(content_type=content_type, url=str(item["url"]))
    return None  # an image of a group Ark could not make carries only its error


# --- Seedance -----------------------------------------------------------------------------------

def commands_of(request: VideoRequest) -> str:
    """Seedance's output settings, written after the prompt as text commands."""
    commands = {"resolution": requested_resolution(request), "ratio": request.aspect_ratio or size_ratio(request.size),
                "duration": request.duration_seconds, "framespersecond": request.fps, "seed": request.seed}
    written = [f"--{name} {value}" for name, value in commands.items() if value is not None]
    return " ".join([*written, "--watermark false"])


def task_body(request: VideoRequest, target: Target) -> dict[str, Any]:
    prompt = request.prompt
    if request.negative_prompt:
        raise errors.UnsupportedFeature(f"{target.provider}'s Seedance takes no negative prompt; leave it out.",
                                        provider=target.provider)
    content: list[dict[str, Any]] = [{"type": "text", "text": f"{prompt} {commands_of(request)}".strip()}]
    if request.image is not None:
        content.append({"type": "image_url", "image_url": {"url": media_url(request.image)}, "role": "first_frame"})
    return {"model": target.upstream_model, "content": content, **request.extra}


def state_of(task: Any, handle: dict[str, Any], target: Target) -> VideoJobState:
    if not isinstance(task, dict) or task.get("status") not in STATUSES:
        raise errors.ProviderUnavailable(f"{target.provider} answered with a task in no known status.",
                                         provider=target.provider)
    status = STATUSES[task["status"]]
    state = VideoJobState(status=status, handle=handle, upstream_model=target.upstream_model)
    if status == "queued":
        state.progress = 0
    elif status == "failed":
        state.error = task_failure(task, target).message
    elif status == "cancelled":
        state.error = f"{target.provider} cancelled the task."
    elif status == "completed":
        video_url = (task.get("content") or {}).get("video_url")
        if not video_url:
            return VideoJobState(status="failed", handle=handle, error=f"{target.provider} finished a task without "
                                 "its video.", upstream_model=target.upstream_model)
        seconds = task.get("duration") or handle.get("seconds") or 0
        state.progress = 100
        state.video = GeneratedMedia(content_type="video/mp4", url=str(video_url))
        state.usage = Usage(video_seconds=Decimal(str(seconds)),
                            media_detail=str(task.get("resolution") or handle.get("resolution") or ""))
    return state


# --- errors -------------------------------------------------------------------------------------

def is_sensitive(code: str) -> bool:
    return "SensitiveContent" in code


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    error = openai_errors.error_from_response(status, headers, body, target)
    try:
        detail = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        detail = {}
    if isinstance(detail, dict) and is_sensitive(str(detail.get("code") or "")):
        return errors.ContentFiltered(f"{target.provider} refused the content ({detail['code']}): "
                                      f"{detail.get('message') or 'moderation'}", provider=target.provider,
                                      upstream_status=status)
    return error


# Ark keeps a finished task for a while; a 404 after that is the task gone, not the model.
task_error = job_error_mapper(error_from_response, "task")


def task_failure(task: dict[str, Any], target: Target) -> errors.ProviderError:
    detail = task.get("error") if isinstance(task.get("error"), dict) else {}
    code = str(detail.get("code") or "")
    text = f"{target.provider}'s task failed: {detail.get('message') or 'no reason given'}{f' ({code})' if code else ''}"
    if is_sensitive(code):
        return errors.ContentFiltered(text, provider=target.provider)
    return errors.ProviderUnavailable(text, provider=target.provider)

