"""Hugging Face Inference Providers: image-to-image and video models by their Hub model id, through
the router (https://router.huggingface.co), as huggingface_hub's InferenceClient calls them. Chat
is the router's OpenAI-compatible /v1 and goes to the OpenAI-compatible adapter.

The router fronts other providers, each in its own wire format under ``/{provider}``. Which one
serves a model, and under which id, is the Hub's inference provider mapping:

    GET {hub}/api/models/{model id}?expand=inferenceProviderMapping
        -> {"id", "inferenceProviderMapping": {"fal-ai": {"status": "live", "providerId":
           "fal-ai/qwen-image-edit", "task": "image-to-image"}, ...}}   (a list of objects with
           "provider" in newer answers; both are read)

The upstream model name is the Hub id, optionally pinned to one provider with HF's own suffix
(``Qwen/Qwen-Image-Edit:fal-ai``); otherwise the first live mapping for the task among the providers
spoken here wins. Mappings are kept MAPPING_SECONDS per process. ``hub_url`` (quirk) points at
another Hub. The token (HF_TOKEN) goes to the router and the Hub only.

    fal-ai     POST {router}/fal-ai/{providerId}?_subdomain=queue   {image_url, image_urls, prompt, ...}
               -> {request_id, response_url, status_url}; GET {router}/fal-ai{path}/status?_subdomain=queue
               -> {status: IN_QUEUE | IN_PROGRESS | COMPLETED}; GET {router}/fal-ai{path}?_subdomain=queue
               -> the output ({images: [{url}]} | {video: {url}}); PUT .../cancel to stop one
               ({path}: the path of response_url, /{owner}/{app}/requests/{id})
    wavespeed  POST {router}/wavespeed/api/v3/{providerId}   {image, prompt, ...} -> WaveSpeed's envelope,
               then GET {router}/wavespeed/api/v3/predictions/{id}/result (providers.adapters.wavespeed)
    auth       Authorization: Bearer <HF token>

Input (the InferenceClient's names): prompt, negative_prompt, seed, guidance_scale,
num_inference_steps (steps), and the image: for fal ``image_url`` and ``image_urls`` (the client's
upload as a data: URL), for WaveSpeed ``image``; edits take one image. A size becomes fal's
``image_size {width, height}`` (the client's ``target_size``). Video adds ``resolution`` and, for
WaveSpeed, ``duration``. Declared extras go as named.

Output: fal's ``images[].url`` / ``video.url`` and WaveSpeed's ``outputs``, fetched at once. An image
edit is billed per image; a video by the seconds asked for (else read from the MP4), at its resolution.

Errors: the router's own ``{"error": "..."}`` (401 a bad token, 402 credits used up -> ProviderAuthFailed;
404 a model with no live mapping -> ProviderNotFound) and the provider's body passed through, mapped
by status as fal's (``detail``) and WaveSpeed's (``message``) are.
"""

import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from providers import errors
from providers.adapters import wavespeed
from providers.adapters.compatible_chat import OpenAICompatibleChat
from providers.adapters.http_calls import (
    error_for_status,
    fetch_json,
    job_error_mapper,
    json_request,
    redacted_message,
)
from providers.adapters.queue import (
    JobEnded,
    media_url,
    requested_resolution,
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

HUB_URL = "https://huggingface.co"
PROVIDERS = ("fal-ai", "wavespeed")  # the router's providers whose wire formats are spoken here
MAPPING_SECONDS = 600.0
FAL_QUEUE = {"_subdomain": "queue"}
_mappings: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}


class HuggingFaceAdapter(OpenAICompatibleChat):
    OPERATIONS = frozenset({"complete", "stream", "edit_images", "submit_video", "poll_video", "cancel_video"})

    wire_format = "huggingface"

    async def edit_images(self, request: ImageRequest, target: Target) -> ImageResult:
        if len(request.images) != 1:
            raise errors.UnsupportedFeature(f"{target.provider} image-to-image takes one image, not "
                                            f"{len(request.images)}.", provider=target.provider)
        provider, provider_id = await provider_route(target, "image-to-image")
        image = media_url(request.images[0])
        params = parameters(request.prompt, request.negative_prompt, request.seed, request.guidance_scale,
                            request.steps, request.extra)
        if provider == "fal-ai":
            payload = {"image_url": image, "image_urls": [image], **params}
            if request.size:
                width, _, height = request.size.partition("x")
                payload["image_size"] = {"width": int(width), "height": int(height)}
            output = await run_fal(payload, provider_id, target)
            urls = [item["url"] for item in output.get("images") or () if isinstance(item, dict) and item.get("url")]
        else:
            urls = await wavespeed.run_prediction({"image": image, **params}, routed(target, provider, provider_id))
        if not urls:
            raise errors.ProviderUnavailable(f"{target.provider} ({provider}) answered without an image.",
                                             provider=target.provider)
        images = [GeneratedMedia(content_type=wavespeed.guess_type(url, "image/png"), url=url) for url in urls]
        return ImageResult(images=images, usage=Usage(images=len(images), media_detail=request.size or ""),
                           upstream_model=target.upstream_model)

    async def submit_video(self, request: VideoRequest, target: Target) -> VideoJobState:
        task = "image-to-video" if request.image is not None else "text-to-video"
        provider, provider_id = await provider_route(target, task)
        params = parameters(request.prompt, request.negative_prompt, request.seed, None, None, request.extra)
        resolution = requested_resolution(request)
        if resolution:
            params["resolution"] = resolution
        common = {"provider": provider, "provider_id": provider_id, "seconds": request.duration_seconds,
                  "resolution": resolution}
        if provider == "fal-ai":
            if request.image is not None:
                params["image_url"] = media_url(request.image)
            answer = await fetch_json(fal_request("POST", f"/{provider_id}", target, body=params), target,
                                      error_from_response)
            handle = {**common, "path": fal_path(answer, target)}
            return VideoJobState(status="queued", handle=handle, progress=0, upstream_model=target.upstream_model)
        if request.image is not None:
            params["image"] = media_url(request.image)
        if request.duration_seconds is not None:
            params["duration"] = request.duration_seconds
        routed_target = routed(target, provider, provider_id)
        prediction = await wavespeed.submit(params, routed_target)
        state = await wavespeed.video_state(prediction, {**common, "id": prediction["id"]}, routed_target)
        return replace(state, upstream_model=target.upstream_model)

    async def poll_video(self, state: VideoJobState, target: Target) -> VideoJobState:
        handle = state.handle
        if handle["provider"] == "wavespeed":
            routed_target = routed(target, "wavespeed", handle["provider_id"])
            try:
                prediction = await wavespeed.fetch_result(handle["id"], routed_target)
            except errors.ProviderNotFound as error:
                return VideoJobState(status="failed", handle=handle, error=error.message,
                                     upstream_model=target.upstream_model)
            polled = await wavespeed.video_state(prediction, handle, routed_target, previous=state)
            return replace(polled, upstream_model=target.upstream_model)
        status = await fetch_json(fal_request("GET", f"{handle['path']}/status", target), target, request_error)
        value = status.get("status") if isinstance(status, dict) else None
        if value == "IN_QUEUE":
            return VideoJobState(status="queued", handle=handle, progress=0, upstream_model=target.upstream_model)
        if value == "IN_PROGRESS":
            return VideoJobState(status="in_progress", handle=handle, progress=state.progress,
                                 upstream_model=target.upstream_model)
        if value != "COMPLETED":
            raise errors.ProviderUnavailable(f"{target.provider} answered a status check with {value!r}.",
                                             provider=target.provider)
        try:
            output = await fetch_json(fal_request("GET", handle["path"], target), target, request_error)
        except errors.ProviderError as error:
            if error.retryable:
                raise
            return VideoJobState(status="failed", handle=handle, error=error.message,
                                 upstream_model=target.upstream_model)
        return await completed_video(output, handle, target)

    def can_cancel_video(self, state: VideoJobState) -> bool:
        return state.handle.get("provider") == "fal-ai"  # WaveSpeed has no endpoint to stop a prediction

    async def cancel_video(self, state: VideoJobState, target: Target) -> None:
        if state.handle["provider"] != "fal-ai":
            return  # WaveSpeed has no endpoint to stop a prediction
        try:
            await fetch_json(fal_request("PUT", f"{state.handle['path']}/cancel", target), target, request_error)
        except (errors.ProviderNotFound, errors.ProviderBadRequest):
            return  # gone, or already over


# --- the provider mapping ---------------------------------------------------------------------------

def router_root(target: Target) -> str:
    """The router's root: the provider's base URL is its OpenAI-compatible /v1 (for chat)."""
    return target.base_url.rstrip("/").removesuffix("/v1")


def split_pin(upstream_model: str) -> tuple[str, str | None]:
    model, _, pinned = upstream_model.partition(":")
    return model, pinned or None


def mapping_entries(answer: Any) -> list[dict[str, Any]]:
    mapping = answer.get("inferenceProviderMapping") if isinstance(answer, dict) else None
    if isinstance(mapping, dict):
        return [{**value, "provider": provider} for provider, value in mapping.items() if isinstance(value, dict)]
    if isinstance(mapping, list):
        return [value for value in mapping if isinstance(value, dict)]
    return []


async def fetch_mapping(model: str, target: Target) -> list[dict[str, Any]]:
    hub = str(target.quirks.get("hub_url") or HUB_URL).rstrip("/")
    cached = _mappings.get((hub, model))
    if cached and cached[0] > time.monotonic():
        return cached[1]
    prepared = json_request("GET", f"{hub}/api/models/{model}", target, params={"expand": "inferenceProviderMapping"})
    entries = mapping_entries(await fetch_json(prepared, target, error_from_response))
    _mappings[(hub, model)] = (time.monotonic() + MAPPING_SECONDS, entries)
    return entries


async def provider_route(target: Target, task: str) -> tuple[str, str]:
    """The provider serving the model for ``task`` through the router, and the model's id there."""
    model, pinned = split_pin(target.upstream_model)
    entries = await fetch_mapping(model, target)
    for entry in entries:
        provider = entry.get("provider")
        if (entry.get("task") == task and entry.get("status") == "live" and provider in PROVIDERS
                and (pinned is None or provider == pinned) and entry.get("providerId")):
            return str(provider), str(entry["providerId"])
    offered = ", ".join(sorted({f"{e.get('provider')} ({e.get('task')}, {e.get('status')})" for e in entries})) or "none"
    raise errors.ProviderNotFound(
        f"{target.provider} has no live {task} provider for '{model}'{f' on {pinned}' if pinned else ''} that the "
        f"gateway speaks ({', '.join(PROVIDERS)}); the Hub lists: {offered}.", provider=target.provider)


def routed(target: Target, provider: str, provider_id: str) -> Target:
    """The target as the provider's own API sees it, behind the router."""
    return replace(target, base_url=f"{router_root(target)}/{provider}", upstream_model=provider_id)


def parameters(prompt: str, negative_prompt: str | None, seed: int | None, guidance_scale: float | None,
               steps: int | None, extra: dict[str, Any]) -> dict[str, Any]:
    given = {"prompt": prompt, "negative_prompt": negative_prompt, "seed": seed, "guidance_scale": guidance_scale,
             "num_inference_steps": steps}
    return {**{name: value for name, value in given.items() if value is not None}, **extra}


# --- fal-ai behind the router -----------------------------------------------------------------------

def fal_request(method: str, path: str, target: Target, *, body: dict | None = None) -> httpx.Request:
    return json_request(method, f"{router_root(target)}/fal-ai{path}", target, body=body, params=FAL_QUEUE)


def fal_path(answer: Any, target: Target) -> str:
    """The request's path on fal's queue, from response_url (as the InferenceClient takes it)."""
    url = answer.get("response_url") if isinstance(answer, dict) else None
    if not url or not answer.get("request_id"):
        raise errors.ProviderUnavailable(f"{target.provider} queued the request without its id and URLs.",
                                         provider=target.provider)
    return urlsplit(str(url)).path


async def run_fal(payload: dict[str, Any], provider_id: str, target: Target) -> dict[str, Any]:
    answer = await fetch_json(fal_request("POST", f"/{provider_id}", target, body=payload), target,
                              error_from_response)
    path = fal_path(answer, target)

    async def check() -> dict[str, Any] | None:
        status = await fetch_json(fal_request("GET", f"{path}/status", target), target, request_error)
        if not isinstance(status, dict) or status.get("status") != "COMPLETED":
            return None
        try:
            output = await fetch_json(fal_request("GET", path, target), target, request_error)
        except errors.ProviderError as error:
            if error.retryable and error.upstream_status is None:
                raise
            raise JobEnded(error) from error
        return output if isinstance(output, dict) else {}

    async def cancel() -> None:
        await fetch_json(fal_request("PUT", f"{path}/cancel", target), target, request_error)

    return await wait_for_job(check, target, cancel)


async def completed_video(output: Any, handle: dict[str, Any], target: Target) -> VideoJobState:
    video = output.get("video") if isinstance(output, dict) else None
    url = video.get("url") if isinstance(video, dict) else video if isinstance(video, str) else None
    if not url:
        return VideoJobState(status="failed", handle=handle, error=f"{target.provider} finished without a video.",
                             upstream_model=target.upstream_model)
    media = GeneratedMedia(content_type="video/mp4", url=str(url))
    seconds = await video_seconds(media, handle.get("seconds"), target, job=handle.get("path") or str(url))
    return VideoJobState(status="completed", handle=handle, progress=100, video=media,
                         usage=Usage(video_seconds=seconds, media_detail=handle.get("resolution") or ""),
                         upstream_model=target.upstream_model)


# --- errors -----------------------------------------------------------------------------------------

def message_of(payload: Any) -> str:
    if not isinstance(payload, dict):
        return ""
    error = payload.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or "")
    detail = payload.get("detail")
    if isinstance(detail, list):
        return "; ".join(str(item.get("msg") if isinstance(item, dict) else item) for item in detail)
    return str(error or detail or payload.get("message") or "")


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    message = redacted_message(body, target, message_of)
    return error_for_status(
        status, headers, message, target,
        auth_hint="the operator must check HF_TOKEN (its Inference Providers permission, or the account's credits).",
        not_found=f"{target.provider} does not serve '{target.upstream_model}' (404: {message}).")


request_error = job_error_mapper(error_from_response, "request")


def forget_mappings() -> None:
    """Drop the cached provider mappings (tests, or an operator who just changed a model's providers)."""
    _mappings.clear()

