"""Runway API wire format: image-to-video tasks.

    POST   {base_url}/v1/image_to_video   {"model", "promptImage", "promptText", "ratio": "1280:720",
                                           "duration": 5, "seed"}  -> {"id"}
    GET    {base_url}/v1/tasks/{id}       status PENDING | THROTTLED | RUNNING (progress 0-1) |
                                          SUCCEEDED (output: [url]) | FAILED (failure, failureCode) | CANCELLED
    DELETE {base_url}/v1/tasks/{id}       cancels a running task (deletes a finished one)
    Authorization: Bearer <key>, X-Runway-Version: 2024-11-06 (required)

Every Runway video starts from an image (``promptImage``: the client's https or data: URL, or
its upload as a data: URL). Sizes are the gateway's "WxH", sent as Runway's "W:H" ratio. The
finished video is a public, expiring URL the gateway copies at once (Adapter.fetch_media). Runway
reports no length: a task is billed for the duration asked for, at ``"<size>/<resolution>"``.

Errors: ``{"error": "..."}``; 429 -> rate limited, 5xx -> unavailable, 401/403 -> our credential
refused, 404 on a task -> gone, other 4xx -> the provider refused the request.
"""

import base64
import json
from decimal import Decimal
from typing import Any

import httpx

from providers import errors
from providers.adapters.base import Adapter
from providers.adapters.http_calls import (
    credential_refused,
    error_for_status,
    fetch_json,
    redacted_message,
    timeout_for,
    transport_error,
)
from providers.http import get_client
from providers.media_types import GeneratedMedia, MediaInput, VideoJobState, VideoRequest
from providers.types import Target, Usage

API_VERSION = "2024-11-06"
DEFAULT_SECONDS = 5  # Runway's default duration
STATUSES = {"PENDING": "queued", "THROTTLED": "queued", "RUNNING": "in_progress", "SUCCEEDED": "completed",
            "FAILED": "failed", "CANCELLED": "cancelled"}


class RunwayAdapter(Adapter):
    OPERATIONS = frozenset({"submit_video", "poll_video", "cancel_video"})

    wire_format = "runway"

    async def submit_video(self, request: VideoRequest, target: Target) -> VideoJobState:
        prepared = httpx.Request("POST", url_for(target, "image_to_video"), headers=headers_for(target),
                                 content=json.dumps(build_body(request, target)).encode(),
                                 extensions={"timeout": timeout_for(target).as_dict()})
        task = await fetch_json(prepared, target, error_from_response)
        if not isinstance(task, dict) or not task.get("id"):
            raise errors.ProviderUnavailable(f"{target.provider} answered without a task id.", provider=target.provider)
        handle = {"id": task["id"], "seconds": request.duration_seconds or DEFAULT_SECONDS,
                  "detail": "/".join(part for part in (request.size, request.resolution) if part)}
        return VideoJobState(status="queued", handle=handle, progress=0, upstream_model=target.upstream_model)

    async def poll_video(self, state: VideoJobState, target: Target) -> VideoJobState:
        prepared = httpx.Request("GET", url_for(target, "tasks", state.handle["id"]), headers=headers_for(target),
                                 extensions={"timeout": timeout_for(target).as_dict()})
        task = await fetch_json(prepared, target, error_from_response)
        return state_of(task, state.handle, target)

    def can_cancel_video(self, state: VideoJobState) -> bool:
        return True

    async def cancel_video(self, state: VideoJobState, target: Target) -> None:
        try:
            response = await get_client().delete(url_for(target, "tasks", state.handle["id"]),
                                                 headers={**headers_for(target), "Accept": "*/*"},
                                                 timeout=timeout_for(target))
        except httpx.TransportError as exc:
            raise transport_error(exc, target) from exc
        if response.status_code >= 400 and response.status_code != 404:
            raise error_from_response(response.status_code, response.headers, response.content, target)


def url_for(target: Target, *parts: str) -> str:
    base = target.base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return "/".join([base, *parts])


def headers_for(target: Target) -> dict[str, str]:
    return {"Authorization": f"Bearer {target.api_key}", "X-Runway-Version": API_VERSION,
            "Content-Type": "application/json", "Accept": "application/json"}


def prompt_image(image: MediaInput) -> str:
    if image.content is not None:
        return f"data:{image.content_type};base64,{base64.b64encode(image.content).decode()}"
    return image.url or ""


def build_body(request: VideoRequest, target: Target) -> dict[str, Any]:
    if request.image is None:
        raise errors.ProviderBadRequest(
            f"{target.provider} makes videos from an image: send the first frame (image_url or input_reference).",
            provider=target.provider)
    body: dict[str, Any] = {"model": target.upstream_model, "promptImage": prompt_image(request.image)}
    if request.prompt:
        body["promptText"] = request.prompt
    if request.size:
        body["ratio"] = request.size.replace("x", ":")
    if request.duration_seconds is not None:
        body["duration"] = request.duration_seconds
    if request.seed is not None:
        body["seed"] = request.seed
    if request.negative_prompt:
        body["negativePrompt"] = request.negative_prompt
    return body


def state_of(task: Any, handle: dict[str, Any], target: Target) -> VideoJobState:
    if not isinstance(task, dict) or task.get("status") not in STATUSES:
        raise errors.ProviderUnavailable(f"{target.provider} answered with a task in no known status.",
                                         provider=target.provider)
    status = STATUSES[task["status"]]
    state = VideoJobState(status=status, handle=handle, upstream_model=target.upstream_model)
    if status == "in_progress" and task.get("progress") is not None:
        state.progress = min(99, int(float(task["progress"]) * 100))
    elif status == "failed":
        code = task.get("failureCode")
        state.error = f"{task.get('failure') or 'the task failed'}{f' ({code})' if code else ''}"
    elif status == "completed":
        outputs = task.get("output") or []
        if not outputs:
            raise errors.ProviderUnavailable(f"{target.provider} finished a task without its video.",
                                             provider=target.provider)
        state.progress = 100
        state.video = GeneratedMedia(content_type="video/mp4", url=str(outputs[0]))
        state.usage = Usage(video_seconds=Decimal(handle["seconds"]), media_detail=handle.get("detail", ""))
    return state


def message_of(payload: Any) -> str:
    return str(payload.get("error") or "") if isinstance(payload, dict) else ""


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    if status in (401, 403):
        return credential_refused(status, target)
    return error_for_status(status, headers, redacted_message(body, target, message_of), target,
                            auth_statuses=(), auth_hint="",
                            not_found=f"{target.provider} has no such task or model (HTTP 404).")
