"""Replicate's predictions API (WIRE_FORMATS 7b): image and video models.

    create   POST {base_url}/v1/models/{owner}/{name}/predictions {"input"}   official models, "owner/name"
             POST {base_url}/v1/predictions {"version", "input"}            "owner/name:version", or a bare version
             POST {base_url}/v1/deployments/{owner}/{name}/predictions       "deployments/owner/name"
             -> 201 {id, status, input, output, error, logs, metrics, urls: {get, cancel, stream}}
    poll     GET  {urls.get}                cancel   POST {urls.cancel} (answers the prediction)
    auth     Authorization: Bearer <REPLICATE_API_TOKEN>
    status   starting -> queued, processing -> in_progress, succeeded -> completed, failed -> failed,
             canceled -> cancelled

The upstream model name says which model (any model the operator adds in the admin is served).
Images are created with ``Prefer: wait=N`` (N: up to 60 s, never past target.total_timeout):
most answer within it, already succeeded; the rest are polled at urls.get with backoff within
the total timeout (providers.adapters.queue) and cancelled when the wait is given up. Video is a
job the gateway polls: submit_video creates the prediction without waiting, poll_video looks
once; the handle keeps its URLs (and the seconds and resolution asked for). URLs Replicate hands
back are followed when on the base URL's host, otherwise rebuilt there from the prediction id;
the token goes nowhere else (generated files on replicate.delivery are fetched without it, files
under the API's own /v1/files with it).

Input, IR -> Replicate (common Cog input names; a model naming one differently declares it in
the provider's ``model_inputs`` quirk, see providers.adapters.queue):
    images   prompt, num_outputs (n, sent when above 1), width and height (size), aspect_ratio,
             seed, negative_prompt, guidance_scale, num_inference_steps (steps), output_format,
             and quality and style as given (only for models whose media_options declare them)
    edits    the same, plus image (the image as sent, or as a data: URL) and mask; more than one
             image -> UnsupportedFeature
    video    prompt, negative_prompt, seed, aspect_ratio, resolution, duration (whole seconds),
             fps, image (the first frame; models declare start_image, first_frame_image, ...).
             An OpenAI size, "1280x720", becomes aspect_ratio 16:9 and resolution 720p
    extra    merged in as given (the declared provider extras); the model's fixed inputs last

Output, Replicate -> IR: ``output`` is a list of file URLs or one URL. usage.images is how many
came back, media_detail the size asked for (else the aspect ratio); a video's seconds are the
duration asked for, else read from the file (providers.adapters.mp4), media_detail its resolution.

Errors (RFC 7807 ``{"title", "detail", "status"}``): 401, 402 (out of credit), 403 ->
ProviderAuthFailed; 404 -> ProviderNotFound; 429 -> ProviderRateLimited (Retry-After); 422 and
other 4xx -> ProviderBadRequest with Replicate's detail; 5xx, 408, 409 -> ProviderUnavailable. A
prediction that failed: flagged as NSFW -> ContentFiltered, otherwise ProviderUnavailable with
its error (Replicate does not bill failed predictions of official models, so trying again is
safe); canceled -> ProviderUnavailable.
"""

import math
import mimetypes
import time
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from providers import errors
from providers.adapters.base import Adapter
from providers.adapters.http_calls import (
    download,
    error_for_status,
    fetch_json,
    json_request,
    parse_retry_after,
    redacted_message,
)
from providers.adapters.queue import (
    apply_model_inputs,
    media_url,
    model_inputs,
    progress_from_logs,
    requested_resolution,
    same_origin,
    video_input,
    video_seconds,
    wait_for_job,
)
from providers.media_types import (
    GeneratedMedia,
    ImageRequest,
    ImageResult,
    VideoJobState,
    VideoRequest,
)
from providers.types import Target, Usage

MAX_WAIT = 60  # Replicate holds a Prefer: wait request at most this long
STATES = {"starting": "queued", "processing": "in_progress", "succeeded": "completed", "failed": "failed",
          "canceled": "cancelled"}
TERMINAL = {"succeeded", "failed", "canceled"}
FILTERED = ("nsfw", "safety", "content policy", "flagged")


class ReplicateAdapter(Adapter):
    OPERATIONS = frozenset({"generate_images", "edit_images", "submit_video", "poll_video", "cancel_video"})

    wire_format = "replicate"

    async def generate_images(self, request: ImageRequest, target: Target) -> ImageResult:
        prediction = await run_prediction(image_input(request, target), target)
        return image_result(prediction, request, target)

    async def edit_images(self, request: ImageRequest, target: Target) -> ImageResult:
        if len(request.images) != 1:
            raise errors.UnsupportedFeature(
                f"{target.provider} edits take exactly one image; {len(request.images)} were sent.",
                provider=target.provider)
        prediction = await run_prediction(image_input(request, target, edit=True), target)
        return image_result(prediction, request, target)

    async def submit_video(self, request: VideoRequest, target: Target) -> VideoJobState:
        prediction = await create(video_input(request, target, duration=int, image_field="image"), target)
        handle = {**prediction_urls(prediction, target), "seconds": request.duration_seconds,
                  "resolution": requested_resolution(request)}
        return await video_state(prediction, handle, target)

    async def poll_video(self, state: VideoJobState, target: Target) -> VideoJobState:
        try:
            prediction = await fetch_json(api_request("GET", state.handle["get_url"], target), target,
                                          error_from_response)
        except errors.ProviderNotFound as error:
            return VideoJobState(status="failed", handle=state.handle, error=error.message,
                                 upstream_model=target.upstream_model)
        return await video_state(prediction, state.handle, target, previous=state)

    def can_cancel_video(self, state: VideoJobState) -> bool:
        return True

    async def cancel_video(self, state: VideoJobState, target: Target) -> None:
        await cancel(state.handle, target)

    async def fetch_media(self, media: GeneratedMedia, target: Target) -> bytes:
        if media.content is not None:
            return media.content
        return await fetch_file(media.url or "", target)


# --- predictions --------------------------------------------------------------------------------

def api_request(method: str, url: str, target: Target, *, body: dict | None = None,
                wait: int | None = None) -> httpx.Request:
    return json_request(method, url, target, body=body, headers={"Prefer": f"wait={wait}"} if wait else None)


def create_url_and_body(payload: dict[str, Any], target: Target) -> tuple[str, dict[str, Any]]:
    base = f"{target.base_url.rstrip('/')}/v1"
    model = target.upstream_model.strip("/")
    if model.startswith("deployments/"):
        return f"{base}/{quote(model)}/predictions", {"input": payload}
    name, _, version = model.partition(":")
    if version or "/" not in name:
        return f"{base}/predictions", {"version": version or name, "input": payload}
    return f"{base}/models/{quote(name)}/predictions", {"input": payload}


async def create(payload: dict[str, Any], target: Target, *, wait: int | None = None) -> dict[str, Any]:
    url, body = create_url_and_body(payload, target)
    prediction = await fetch_json(api_request("POST", url, target, body=body, wait=wait), target, error_from_response)
    if not isinstance(prediction, dict) or not prediction.get("id") or prediction.get("status") not in STATES:
        raise errors.ProviderUnavailable(f"{target.provider} answered the prediction without an id or status.",
                                         provider=target.provider)
    return prediction


def prediction_urls(prediction: dict[str, Any], target: Target) -> dict[str, str]:
    base = f"{target.base_url.rstrip('/')}/v1/predictions/{quote(prediction['id'])}"
    given = prediction.get("urls") or {}
    get_url = given.get("get") if same_origin(given.get("get"), target.base_url) else base
    cancel_url = given.get("cancel") if same_origin(given.get("cancel"), target.base_url) else f"{base}/cancel"
    return {"id": prediction["id"], "get_url": get_url, "cancel_url": cancel_url}


async def run_prediction(payload: dict[str, Any], target: Target) -> dict[str, Any]:
    """Create with Prefer: wait, then poll until the prediction has ended; a succeeded one."""
    started = time.monotonic()
    wait = max(1, min(MAX_WAIT, math.floor(target.total_timeout) - 1))
    prediction = await create(payload, target, wait=wait)
    if prediction["status"] not in TERMINAL:
        handle = prediction_urls(prediction, target)

        async def check() -> dict[str, Any] | None:
            polled = await fetch_json(api_request("GET", handle["get_url"], target), target, error_from_response)
            return polled if isinstance(polled, dict) and polled.get("status") in TERMINAL else None

        remaining = max(0.0, target.total_timeout - (time.monotonic() - started))
        prediction = await wait_for_job(check, replace(target, total_timeout=remaining),
                                         lambda: cancel(handle, target))
    if prediction["status"] != "succeeded":
        raise prediction_failure(prediction, target)
    return prediction




async def cancel(handle: dict, target: Target) -> None:
    try:
        await fetch_json(api_request("POST", handle["cancel_url"], target), target, error_from_response)
    except (errors.ProviderNotFound, errors.ProviderBadRequest):
        return  # gone, or already over: nothing to stop


async def video_state(prediction: dict[str, Any], handle: dict, target: Target,
                      previous: VideoJobState | None = None) -> VideoJobState:
    status = STATES.get(prediction.get("status"))
    if status is None:
        raise errors.ProviderUnavailable(f"{target.provider} answered with prediction status "
                                         f"{prediction.get('status')!r}.", provider=target.provider)
    common = {"handle": handle, "upstream_model": target.upstream_model}
    if status in ("queued", "in_progress"):
        progress = progress_from_logs(str(prediction.get("logs") or "").splitlines())
        if progress is None:
            progress = 0 if status == "queued" else (previous.progress if previous else None)
        return VideoJobState(status=status, progress=progress, **common)
    if status != "completed":
        return VideoJobState(status=status, error=prediction_failure(prediction, target).message, **common)
    urls = output_urls(prediction.get("output"))
    if not urls:
        return VideoJobState(status="failed", error=f"{target.provider}'s prediction succeeded without a video.",
                             **common)
    video = GeneratedMedia(content_type=guess_type(urls[0], "video/mp4"), url=urls[0])
    seconds = await video_seconds(video, handle.get("seconds"), target, job=handle.get("id", ""), fetch=fetch_file)
    return VideoJobState(status="completed", progress=100, video=video,
                         usage=Usage(video_seconds=seconds, media_detail=handle.get("resolution") or ""), **common)


async def fetch_file(url: str, target: Target) -> bytes:
    """A generated file; the token goes along only to the API's own host (its /v1/files)."""
    headers = {"Authorization": f"Bearer {target.api_key}"} if same_origin(url, target.base_url) else None
    return await download(url, target, headers)


def prediction_failure(prediction: dict[str, Any], target: Target) -> errors.ProviderError:
    if prediction.get("status") == "canceled":
        return errors.ProviderUnavailable(f"{target.provider} cancelled the prediction.", provider=target.provider)
    message = str(prediction.get("error") or "the prediction failed without saying why")
    if target.api_key:
        message = message.replace(target.api_key, "[redacted]")
    text = f"{target.provider}'s prediction failed: {message}"
    if any(word in message.lower() for word in FILTERED):
        return errors.ContentFiltered(text, provider=target.provider)
    return errors.ProviderUnavailable(text, provider=target.provider)


# --- input --------------------------------------------------------------------------------------

def image_input(request: ImageRequest, target: Target, *, edit: bool = False) -> dict[str, Any]:
    payload: dict[str, Any] = {"prompt": request.prompt}
    if request.n > 1:
        payload["num_outputs"] = request.n
    if request.size:
        width, _, height = request.size.partition("x")
        payload.update(width=int(width), height=int(height))
    optional = {"aspect_ratio": request.aspect_ratio, "seed": request.seed, "negative_prompt": request.negative_prompt,
                "guidance_scale": request.guidance_scale, "num_inference_steps": request.steps,
                "output_format": request.output_format, "quality": request.quality, "style": request.style}
    payload.update({name: value for name, value in optional.items() if value is not None})
    if edit:
        payload["image"] = media_url(request.images[0])
        if request.mask is not None:
            payload["mask"] = media_url(request.mask)
    return apply_model_inputs({**payload, **request.extra}, model_inputs(target))








# --- output -------------------------------------------------------------------------------------

def output_urls(output: Any) -> list[str]:
    if isinstance(output, str):
        return [output] if output else []
    if isinstance(output, list):
        return [item for item in output if isinstance(item, str) and item]
    return []


def guess_type(url: str, default: str) -> str:
    return mimetypes.guess_type(urlsplit(url).path)[0] or default


def image_result(prediction: dict[str, Any], request: ImageRequest, target: Target) -> ImageResult:
    urls = output_urls(prediction.get("output"))
    if not urls:
        raise errors.ProviderUnavailable(f"{target.provider}'s prediction succeeded without an image.",
                                         provider=target.provider)
    images = [GeneratedMedia(content_type=guess_type(url, "image/webp"), url=url) for url in urls]
    return ImageResult(images=images,
                       usage=Usage(images=len(images), media_detail=request.size or request.aspect_ratio or ""),
                       upstream_model=target.upstream_model)


# --- errors -------------------------------------------------------------------------------------

def message_of(payload: Any) -> str:
    return str(payload.get("detail") or payload.get("title") or "").strip() if isinstance(payload, dict) else ""


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    message = redacted_message(body, target, message_of)
    error = error_for_status(status, headers, message, target,
                             auth_hint="the operator must check its token or account credit.",
                             not_found=f"{target.provider} has no model or prediction for "
                                       f"'{target.upstream_model}' (404: {message}).")
    error.retry_after = parse_retry_after(headers)
    return error

