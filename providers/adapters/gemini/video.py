"""Google Veo through the Gemini API, for GeminiAdapter's video methods.

    POST {base_url}/v1beta/models/{model}:predictLongRunning   -> an Operation {"name": "models/.../operations/..."}
    GET  {base_url}/v1beta/{operation name}                    -> {"done": false} ... then {"done": true,
         "response": {"generateVideoResponse": {"generatedSamples": [{"video": {"uri"}}]}}} or {"error"}
    GET  the sample's uri (a files/...:download link)           -> the MP4
    x-goog-api-key: <key>

Request: ``instances[0]`` holds the prompt and, for image-to-video, the first frame as
``image {bytesBase64Encoded, mimeType}``; ``parameters`` the aspect ratio, duration, resolution
and negative prompt. The Developer API takes no seed or fps (the SDK refuses them for it): asked
for, they are an UnsupportedFeature, never dropped.

Veo reports no progress and no length: while running a job is ``in_progress``, and a finished
one is billed for the seconds asked for, at ``"<size>/<resolution>"``. The handle keeps both. The
file link needs our key, so it is downloaded while polling, with the key sent only to the
provider's own host. A finish with no video (all filtered by Google's safety checks) is a
failed job with Google's reason.
"""

import base64
import mimetypes
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx

from providers import errors, outbound
from providers.adapters.gemini import errors as gemini_errors
from providers.adapters.gemini.request import api_base, api_headers, post
from providers.adapters.http_calls import fetch_json, timeout_for, transport_error
from providers.http import get_client
from providers.media_types import GeneratedMedia, MediaInput, VideoJobState, VideoRequest
from providers.types import Target, Usage

DEFAULT_SECONDS = 8  # Veo's own default length


async def encode_image(image: MediaInput, target: Target) -> dict[str, str]:
    if image.content is not None:
        content, mime = image.content, image.content_type
    else:
        fetched = await outbound.fetch(image.url or "")
        content, mime = fetched.content, fetched.content_type
        if not mime.startswith("image/"):
            mime = mimetypes.guess_type(fetched.url.split("?")[0])[0] or "image/png"
    return {"bytesBase64Encoded": base64.b64encode(content).decode(), "mimeType": mime}


async def build_body(request: VideoRequest, target: Target) -> dict[str, Any]:
    unsupported = [name for name, value in (("seed", request.seed), ("fps", request.fps)) if value is not None]
    if unsupported:
        raise errors.UnsupportedFeature(
            f"Veo on the Gemini API does not take {', '.join(unsupported)}; leave it out.", provider=target.provider)
    instance: dict[str, Any] = {"prompt": request.prompt}
    if request.image is not None:
        instance["image"] = await encode_image(request.image, target)
    parameters: dict[str, Any] = {"sampleCount": 1}
    if request.aspect_ratio:
        parameters["aspectRatio"] = request.aspect_ratio
    if request.duration_seconds is not None:
        parameters["durationSeconds"] = request.duration_seconds
    if request.resolution:
        parameters["resolution"] = request.resolution
    if request.negative_prompt:
        parameters["negativePrompt"] = request.negative_prompt
    return {"instances": [instance], "parameters": parameters}


async def submit_video(request: VideoRequest, target: Target) -> VideoJobState:
    prepared = post(target, "predictLongRunning", await build_body(request, target))
    operation = await fetch_json(prepared, target, gemini_errors.error_from_response)
    if not isinstance(operation, dict) or not operation.get("name"):
        raise errors.ProviderUnavailable(f"{target.provider} answered without an operation name.",
                                         provider=target.provider)
    handle = {"operation": operation["name"], "seconds": request.duration_seconds or DEFAULT_SECONDS,
              "detail": "/".join(part for part in (request.size, request.resolution) if part)}
    return state_of(operation, handle, target) if operation.get("done") else VideoJobState(
        status="queued", handle=handle, progress=0, upstream_model=target.upstream_model)


def state_of(operation: dict[str, Any], handle: dict[str, Any], target: Target) -> VideoJobState:
    if not operation.get("done"):
        return VideoJobState(status="in_progress", handle=handle, upstream_model=target.upstream_model)
    if operation.get("error"):
        error = operation["error"]
        return VideoJobState(status="failed", handle=handle, upstream_model=target.upstream_model,
                             error=str(error.get("message") or error.get("code") or "the provider gave no reason"))
    answer = (operation.get("response") or {}).get("generateVideoResponse") or {}
    samples = [sample.get("video") or {} for sample in answer.get("generatedSamples") or ()]
    if not samples:
        reasons = answer.get("raiMediaFilteredReasons") or ["no video was generated"]
        return VideoJobState(status="failed", handle=handle, upstream_model=target.upstream_model,
                             error=f"{target.provider} returned no video: {'; '.join(map(str, reasons))}")
    video = samples[0]
    media = GeneratedMedia(content_type=video.get("encoding") or video.get("mimeType") or "video/mp4",
                           content=base64.b64decode(video["encodedVideo"]) if video.get("encodedVideo") else None,
                           url=video.get("uri"))
    return VideoJobState(status="completed", handle=handle, progress=100, video=media,
                         usage=Usage(video_seconds=Decimal(handle["seconds"]), media_detail=handle.get("detail", "")),
                         upstream_model=target.upstream_model)


async def poll_video(state: VideoJobState, target: Target) -> VideoJobState:
    prepared = httpx.Request("GET", f"{api_base(target.base_url)}/{state.handle['operation']}", headers=api_headers(target),
                             extensions={"timeout": timeout_for(target).as_dict()})
    current = state_of(await fetch_json(prepared, target, gemini_errors.error_from_response), state.handle, target)
    if current.video is not None and current.video.content is None:
        current.video.content = await download_video(current.video.url or "", target)
    return current


async def download_video(url: str, target: Target) -> bytes:
    """The file behind a sample's uri. Our key goes only to the provider's own host: a redirect
    (Google hands the bytes over from its storage) is followed without it."""
    own_host = urlsplit(url).netloc == urlsplit(target.base_url).netloc
    headers = {"x-goog-api-key": target.api_key} if own_host else {}
    try:
        response = await get_client().get(url, headers=headers, timeout=timeout_for(target))
        if response.is_redirect:
            response = await get_client().get(str(response.next_request.url), timeout=timeout_for(target),
                                               follow_redirects=True)
    except httpx.TransportError as exc:
        raise transport_error(exc, target) from exc
    if response.status_code >= 400:
        raise gemini_errors.error_from_response(response.status_code, response.headers, response.content, target)
    return response.content
