"""ModelScope API-Inference: text-to-image models by their ModelScope model id, through its async
task API. Chat on ModelScope is OpenAI's shape and goes to the OpenAI-compatible adapter.

    submit   POST {base_url}/images/generations         {model, prompt, negative_prompt, size "WxH",
             X-ModelScope-Async-Mode: true              seed, steps, guidance, loras} -> {task_id,
                                                        request_id}
    poll     GET  {base_url}/tasks/{task_id}            {task_id, task_status: PENDING | RUNNING |
             X-ModelScope-Task-Type: image_generation   PROCESSING | SUCCEED | FAILED, output_images:
                                                        [url], errors?}
    auth     Authorization: Bearer <MODELSCOPE_API_KEY> (a ModelScope access token)

The base URL is https://api-inference.modelscope.cn/v1; the upstream model name is the ModelScope
model id (``Qwen/Qwen-Image``, ``black-forest-labs/FLUX.1-dev``), so any AIGC model the operator
enables in the admin is served. A task makes one image: n images are n tasks, submitted together
and waited for together (providers.adapters.queue, within target.total_timeout). ModelScope has no
endpoint to cancel a task. Extras the model declares (``loras``, ...) go into the body as named.

Output: ``output_images`` are public URLs, fetched at once. usage.images is the images made,
media_detail the size asked for.

Errors: an error status with ``{"errors": {"message"}, "request_id"}`` (or ``{"message"}``): 401/403
ProviderAuthFailed, 404 ProviderNotFound (no such model, or not enabled for API-Inference), 429
ProviderRateLimited (ModelScope's daily quota too), 5xx/408/409 ProviderUnavailable, other 4xx
ProviderBadRequest. A FAILED task: its message, ProviderUnavailable (content moderation wording ->
ContentFiltered).
"""

import asyncio
import mimetypes
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from providers import errors
from providers.adapters.compatible_chat import OpenAICompatibleChat
from providers.adapters.http_calls import (
    error_for_status,
    fetch_json,
    job_error_mapper,
    json_request,
    redacted_message,
)
from providers.adapters.queue import wait_for_job
from providers.media_types import GeneratedMedia, ImageRequest, ImageResult
from providers.types import Target, Usage

RUNNING = ("PENDING", "RUNNING", "PROCESSING")
FILTERED = ("sensitive", "moderation", "inappropriate", "safety")


class ModelScopeAdapter(OpenAICompatibleChat):
    OPERATIONS = frozenset({"complete", "stream", "generate_images"})

    wire_format = "modelscope"

    async def generate_images(self, request: ImageRequest, target: Target) -> ImageResult:
        body = image_body(request, target)
        made = await asyncio.gather(*(make_image(body, target) for _ in range(request.n)))
        images = [GeneratedMedia(content_type=mimetypes.guess_type(urlsplit(url).path)[0] or "image/jpeg", url=url)
                  for urls in made for url in urls]
        return ImageResult(images=images, usage=Usage(images=len(images), media_detail=request.size or ""),
                           upstream_model=target.upstream_model)


def image_body(request: ImageRequest, target: Target) -> dict[str, Any]:
    body: dict[str, Any] = {"model": target.upstream_model, "prompt": request.prompt}
    optional = {"negative_prompt": request.negative_prompt, "size": request.size, "seed": request.seed,
                "steps": request.steps, "guidance": request.guidance_scale}
    body.update({name: value for name, value in optional.items() if value is not None})
    return {**body, **request.extra}


async def make_image(body: dict[str, Any], target: Target) -> list[str]:
    """One task, submitted and waited for: the URLs of the images it made."""
    url = f"{target.base_url.rstrip('/')}/images/generations"
    answer = await fetch_json(json_request("POST", url, target, body=body, ensure_ascii=False,
                                           headers={"X-ModelScope-Async-Mode": "true"}),
                              target, error_from_response)
    task_id = answer.get("task_id") if isinstance(answer, dict) else None
    if not task_id:
        raise errors.ProviderUnavailable(f"{target.provider} accepted the task without an id.",
                                         provider=target.provider)
    task_url = f"{target.base_url.rstrip('/')}/tasks/{quote(str(task_id))}"

    async def check() -> dict[str, Any] | None:
        task = await fetch_json(json_request("GET", task_url, target,
                                             headers={"X-ModelScope-Task-Type": "image_generation"}),
                                target, task_error)
        status = task.get("task_status") if isinstance(task, dict) else None
        if status in RUNNING:
            return None
        if status not in ("SUCCEED", "FAILED"):
            raise errors.ProviderUnavailable(f"{target.provider} answered with task status {status!r}.",
                                             provider=target.provider)
        return task

    task = await wait_for_job(check, target, no_cancel)
    if task["task_status"] == "FAILED":
        raise task_failure(task, target)
    urls = [url for url in task.get("output_images") or () if isinstance(url, str) and url]
    if not urls:
        raise errors.ProviderUnavailable(f"{target.provider} finished the task without an image.",
                                         provider=target.provider)
    return urls


async def no_cancel() -> None:
    """ModelScope has no endpoint to stop a task."""


def message_of(payload: Any) -> str:
    if not isinstance(payload, dict):
        return ""
    for key in ("errors", "error"):
        detail = payload.get(key)
        if isinstance(detail, dict) and detail.get("message"):
            return str(detail["message"])
        if isinstance(detail, str) and detail:
            return detail
    return str(payload.get("message") or "")


def task_failure(task: dict[str, Any], target: Target) -> errors.ProviderError:
    message = message_of(task) or "the task failed without saying why"
    text = f"{target.provider}'s task failed: {message}"
    if any(word in message.lower() for word in FILTERED):
        return errors.ContentFiltered(text, provider=target.provider)
    return errors.ProviderUnavailable(text, provider=target.provider)


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    return error_for_status(
        status, headers, redacted_message(body, target, message_of), target, auth_statuses=(401, 403),
        auth_hint="the operator must check its access token (bound to an Alibaba Cloud account, as ModelScope requires).",
        not_found=f"{target.provider} does not serve '{target.upstream_model}' through API-Inference (404).")


task_error = job_error_mapper(error_from_response, "task")
