"""OpenAI video (Sora) wire format, for OpenAICompatibleAdapter's video methods.

    POST   {base_url}/videos                multipart: model, prompt, seconds ("4"), size ("1280x720"),
                                            input_reference (the first frame, a file part)
    GET    {base_url}/videos/{id}           the Video job: status queued | in_progress | completed | failed,
                                            progress 0-100, error {code, message}
    GET    {base_url}/videos/{id}/content   the MP4 (needs our key: fetched here, not by the gateway)
    DELETE {base_url}/videos/{id}           stops and removes the job
    Authorization: Bearer <key>

The handle is ``{"id", "seconds", "size"}``: the job's id and what it is billed by. A finished
video is downloaded while polling (its URL takes our key, which must never leave this module),
so the state comes back with the bytes inline. Usage is the job's own ``seconds`` at its size;
``media_detail`` is ``"<size>/<resolution>"`` ("1280x720/720p"), so a price table may key on either.
"""

import mimetypes
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from providers import errors, outbound
from providers.adapters.http_calls import fetch_json, timeout_for, transport_error
from providers.adapters.openai import errors as openai_errors
from providers.http import get_client
from providers.media_types import GeneratedMedia, MediaInput, VideoJobState, VideoRequest
from providers.types import Target, Usage

STATUSES = {"queued": "queued", "in_progress": "in_progress", "completed": "completed", "failed": "failed"}


def videos_url(target: Target, *parts: str) -> str:
    return "/".join([target.base_url.rstrip("/") + "/videos", *parts])


def auth_headers(target: Target) -> dict[str, str]:
    # No Content-Type: httpx sets the multipart boundary itself.
    return {"Accept": "application/json", **openai_errors.bearer_auth(target)}


def resolution_of(size: str) -> str:
    width, _, height = size.partition("x")
    return f"{min(int(width), int(height))}p" if width.isdigit() and height.isdigit() else ""


async def image_bytes(image: MediaInput, target: Target) -> tuple[bytes, str]:
    """The first frame as bytes and its type: the client's upload, or fetched from its URL."""
    if image.content is not None:
        return image.content, image.content_type
    fetched = await outbound.fetch(image.url or "")
    content_type = fetched.content_type
    if not content_type.startswith("image/"):
        content_type = mimetypes.guess_type(fetched.url.split("?")[0])[0] or "image/png"
    return fetched.content, content_type


async def submit_video(request: VideoRequest, target: Target) -> VideoJobState:
    # Every field as a multipart part, as the SDK sends them ((None, value): a part without a file name).
    parts: dict[str, tuple] = {"model": (None, target.upstream_model), "prompt": (None, request.prompt)}
    if request.duration_seconds is not None:
        parts["seconds"] = (None, str(request.duration_seconds))
    if request.size:
        parts["size"] = (None, request.size)
    if request.image is not None:
        content, content_type = await image_bytes(request.image, target)
        parts["input_reference"] = (request.image.filename or "input_reference", content, content_type)
    prepared = httpx.Request("POST", videos_url(target), headers=auth_headers(target), files=parts,
                             extensions={"timeout": timeout_for(target).as_dict()})
    job = await fetch_json(prepared, target, openai_errors.error_from_response)
    return state_of(job, {}, target)


def state_of(job: dict[str, Any], handle: dict[str, Any], target: Target) -> VideoJobState:
    if not isinstance(job, dict) or not job.get("id"):
        raise errors.ProviderUnavailable(f"{target.provider} answered without a video id.", provider=target.provider)
    handle = {"id": job["id"], "seconds": str(job.get("seconds") or handle.get("seconds") or ""),
              "size": str(job.get("size") or handle.get("size") or "")}
    status = STATUSES.get(str(job.get("status")), "in_progress")
    error = job.get("error") or {}
    return VideoJobState(
        status=status, handle=handle, progress=int(job.get("progress") or 0),
        error=(error.get("message") or error.get("code") or "the provider gave no reason") if status == "failed"
        else None,
        upstream_model=str(job.get("model") or target.upstream_model),
    )


async def poll_video(state: VideoJobState, target: Target) -> VideoJobState:
    prepared = httpx.Request("GET", videos_url(target, state.handle["id"]), headers=auth_headers(target),
                             extensions={"timeout": timeout_for(target).as_dict()})
    current = state_of(await fetch_json(prepared, target, job_error_from_response), state.handle, target)
    if current.status == "completed":
        current.video = GeneratedMedia(content_type="video/mp4", content=await download_content(current, target))
        size = current.handle["size"]
        current.usage = Usage(video_seconds=seconds_of(current.handle["seconds"], target),
                              media_detail=f"{size}/{resolution_of(size)}" if size else "")
        current.progress = 100
    return current


def seconds_of(value: str, target: Target) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise errors.ProviderUnavailable(f"{target.provider} reported a finished video without its length.",
                                         provider=target.provider) from exc


def job_error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    """As any OpenAI error, except that a 404 here means the job is gone (expired or deleted), not
    that our catalog names a model the provider lacks."""
    if status == 404:
        return errors.ProviderNotFound(f"{target.provider} no longer has this video job (HTTP 404).",
                                       provider=target.provider, upstream_status=status)
    return openai_errors.error_from_response(status, headers, body, target)


async def download_content(state: VideoJobState, target: Target) -> bytes:
    try:
        response = await get_client().get(videos_url(target, state.handle["id"], "content"),
                                           headers={**auth_headers(target), "Accept": "application/binary"},
                                           timeout=timeout_for(target))
    except httpx.TransportError as exc:
        raise transport_error(exc, target) from exc
    if response.status_code >= 400:
        raise job_error_from_response(response.status_code, response.headers, response.content, target)
    return response.content


async def cancel_video(state: VideoJobState, target: Target) -> None:
    try:
        response = await get_client().delete(videos_url(target, state.handle["id"]), headers=auth_headers(target),
                                             timeout=timeout_for(target))
    except httpx.TransportError as exc:
        raise transport_error(exc, target) from exc
    if response.status_code >= 400 and response.status_code != 404:
        raise openai_errors.error_from_response(response.status_code, response.headers, response.content, target)

