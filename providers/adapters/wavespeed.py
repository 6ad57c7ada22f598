"""WaveSpeedAI's prediction API: image, image-editing, video and speech models, one submit-and-poll
protocol for all of them.

    submit   POST {base_url}/api/v3/{model id}        the model's JSON input -> {"code": 200, "message",
                                                      "data": {id, model, status: created, outputs: [],
                                                      urls: {get}, error, timings}}
    result   GET  {base_url}/api/v3/predictions/{id}/result   the same envelope; data.status created |
                                                      processing | completed (outputs: [url, ...]) |
                                                      failed (error, code)
    upload   POST {base_url}/api/v3/media/upload/binary   multipart ``file`` -> data.download_url
    auth     Authorization: Bearer <WAVESPEED_API_KEY>

The base URL is https://api.wavespeed.ai; the model id is the upstream model name
(``wavespeed-ai/flux-dev-ultra-fast``, ``minimax/speech-02-hd``), so any WaveSpeed model the
operator adds in the admin is served. WaveSpeed has no cancel endpoint: a prediction given up
runs to its end upstream (the gateway bills nothing for it).

Images, edits and speech wait inside the call, polling the result with backoff within
target.total_timeout (providers.adapters.queue). Video is a job the gateway polls: submit_video
answers once WaveSpeed has accepted the prediction, poll_video looks once; the handle keeps the
prediction id and the seconds and resolution asked for.

Input, IR -> WaveSpeed (its common input names; a model naming one differently, or taking none,
declares it in the provider's ``model_inputs`` quirk, as for fal: providers.adapters.queue):
    images   prompt, size ("1024*1024", WaveSpeed's W*H), num_images (n), seed, guidance_scale,
             num_inference_steps (steps), negative_prompt, output_format, and the declared extras
    edits    the same, plus the image (``image``; several: ``images``) and mask (``mask_image``).
             A model taking its images under names of their own lists them in order:
             ``{image_fields: [image, face_image]}`` (face swap: the photo, then the face). Bytes
             the client uploaded are put on WaveSpeed's media store first (its SDK's upload) and
             sent as the URL it answers; a URL the client gave goes as given
    video    prompt, negative_prompt, seed, duration (whole seconds), size ("1280*720"),
             resolution ("720p"), aspect_ratio ("16:9"), image (image-to-video)
    speech   text, voice_id, speed; instructions -> UnsupportedFeature

Output: ``outputs`` are file URLs (public, expiring; fetched at once without the key). Images:
usage.images is how many came back, media_detail the size asked for. Video: the seconds asked
for (else read from the MP4 itself), media_detail the resolution. Speech: characters of input.

Errors: an error status with ``{"code", "message"}`` -> 401/402/403 ProviderAuthFailed (a key, or
an account without balance), 404 ProviderNotFound (no such model), 429 ProviderRateLimited,
5xx/408/409 ProviderUnavailable, other 4xx ProviderBadRequest. A prediction that failed carries
WaveSpeed's error code: 1200 (content moderation) -> ContentFiltered, 1400-1405 (the input) ->
ProviderBadRequest, anything else (5000 internal, 5003, 5004 timeout) -> ProviderUnavailable.
"""

import logging
import mimetypes
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from providers import errors
from providers.adapters.base import Adapter
from providers.adapters.http_calls import (
    download,
    error_for_status,
    fetch_json,
    job_error_mapper,
    json_request,
    redacted_message,
    timeout_for,
)
from providers.adapters.queue import (
    apply_model_inputs,
    duration_value,
    model_inputs,
    requested_resolution,
    size_ratio,
    video_seconds,
    wait_for_job,
)
from providers.media_types import (
    GeneratedMedia,
    ImageRequest,
    ImageResult,
    MediaInput,
    SpeechRequest,
    SpeechResult,
    VideoJobState,
    VideoRequest,
)
from providers.types import Target, Usage

log = logging.getLogger(__name__)

STATES = {"created": "queued", "processing": "in_progress", "completed": "completed", "failed": "failed"}
TERMINAL = ("completed", "failed")
CONTENT_MODERATION = 1200
INPUT_ERRORS = range(1400, 1500)


class WaveSpeedAdapter(Adapter):
    OPERATIONS = frozenset({"generate_images", "edit_images", "speech", "submit_video", "poll_video"})

    wire_format = "wavespeed"

    async def generate_images(self, request: ImageRequest, target: Target) -> ImageResult:
        payload = apply_model_inputs({**image_input(request), **request.extra}, model_inputs(target))
        outputs = await run_prediction(payload, target)
        return image_result(outputs, request, target)

    async def edit_images(self, request: ImageRequest, target: Target) -> ImageResult:
        if not request.images:
            raise errors.ProviderBadRequest("An image edit needs the image to change.", provider=target.provider)
        payload = {**image_input(request), **await edit_inputs(request, target), **request.extra}
        payload = apply_model_inputs(payload, model_inputs(target))
        outputs = await run_prediction(payload, target)
        return image_result(outputs, request, target)

    async def submit_video(self, request: VideoRequest, target: Target) -> VideoJobState:
        payload = video_input(request, target)
        if request.image is not None:
            payload["image"] = await media_reference(request.image, target)
        payload = apply_model_inputs({**payload, **request.extra}, model_inputs(target))
        prediction = await submit(payload, target)
        handle = {"id": prediction["id"], "seconds": request.duration_seconds,
                  "resolution": requested_resolution(request)}
        return await video_state(prediction, handle, target)

    async def poll_video(self, state: VideoJobState, target: Target) -> VideoJobState:
        try:
            prediction = await fetch_result(state.handle["id"], target)
        except errors.ProviderNotFound as error:
            return VideoJobState(status="failed", handle=state.handle, error=error.message,
                                 upstream_model=target.upstream_model)
        return await video_state(prediction, state.handle, target, previous=state)

    async def speech(self, request: SpeechRequest, target: Target) -> SpeechResult:
        if request.instructions:
            raise errors.UnsupportedFeature(f"{target.provider} speech models take no instructions; leave them out.",
                                            provider=target.provider)
        payload: dict[str, Any] = {"text": request.input}
        if request.voice:
            payload["voice_id"] = request.voice
        if request.speed is not None:
            payload["speed"] = request.speed
        outputs = await run_prediction(apply_model_inputs({**payload, **request.extra}, model_inputs(target)),
                                       target)
        audio = await download(outputs[0], target)
        return SpeechResult(audio=audio, content_type=guess_type(outputs[0], "audio/mpeg"),
                            usage=Usage(characters=len(request.input)), upstream_model=target.upstream_model)


# --- predictions --------------------------------------------------------------------------------

def api_url(target: Target, path: str) -> str:
    return f"{target.base_url.rstrip('/')}/api/v3/{path}"


def prediction_of(answer: Any, target: Target) -> dict[str, Any]:
    """The ``data`` of WaveSpeed's envelope: a prediction with an id and a known status."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or not data.get("id") or data.get("status") not in STATES:
        raise errors.ProviderUnavailable(f"{target.provider} answered without a prediction id and status.",
                                         provider=target.provider)
    return data


async def submit(payload: dict[str, Any], target: Target) -> dict[str, Any]:
    url = api_url(target, quote(target.upstream_model.strip("/")))
    answer = await fetch_json(json_request("POST", url, target, body=payload), target, error_from_response)
    return prediction_of(answer, target)


async def fetch_result(prediction_id: str, target: Target) -> dict[str, Any]:
    url = api_url(target, f"predictions/{quote(prediction_id)}/result")
    answer = await fetch_json(json_request("GET", url, target), target, result_error)
    return prediction_of(answer, target)


async def run_prediction(payload: dict[str, Any], target: Target) -> list[str]:
    """Submit, then poll the result until the prediction has ended: its output URLs."""
    prediction = await submit(payload, target)
    if prediction["status"] not in TERMINAL:

        async def check() -> dict[str, Any] | None:
            polled = await fetch_result(prediction["id"], target)
            return polled if polled["status"] in TERMINAL else None

        prediction = await wait_for_job(check, target, no_cancel)
    if prediction["status"] == "failed":
        raise prediction_failure(prediction, target)
    outputs = output_urls(prediction)
    if not outputs:
        raise errors.ProviderUnavailable(f"{target.provider} completed the prediction without output.",
                                         provider=target.provider)
    return outputs


def output_urls(prediction: dict[str, Any]) -> list[str]:
    return [url for url in prediction.get("outputs") or () if isinstance(url, str) and url]


async def no_cancel() -> None:
    """WaveSpeed has no endpoint to stop a prediction."""


async def media_reference(media: MediaInput, target: Target) -> str:
    """How WaveSpeed takes a file: the URL the client gave, or the bytes uploaded to its media store."""
    if media.url:
        return media.url
    extension = mimetypes.guess_extension(media.content_type) or ""
    files = {"file": (media.filename or f"upload{extension}", media.content or b"", media.content_type)}
    prepared = httpx.Request("POST", api_url(target, "media/upload/binary"), files=files,
                             headers={"Authorization": f"Bearer {target.api_key}", "Accept": "application/json"},
                             extensions={"timeout": timeout_for(target).as_dict()})
    answer = await fetch_json(prepared, target, error_from_response)
    data = answer.get("data") if isinstance(answer, dict) else None
    url = data.get("download_url") if isinstance(data, dict) else None
    if not url:
        raise errors.ProviderUnavailable(f"{target.provider} took the upload without answering its URL.",
                                         provider=target.provider)
    return str(url)


async def video_state(prediction: dict[str, Any], handle: dict, target: Target,
                      previous: VideoJobState | None = None) -> VideoJobState:
    status = STATES[prediction["status"]]
    common = {"handle": handle, "upstream_model": target.upstream_model}
    if status == "queued":
        return VideoJobState(status="queued", progress=0, **common)
    if status == "in_progress":
        return VideoJobState(status="in_progress", progress=previous.progress if previous else None, **common)
    if status == "failed":
        return VideoJobState(status="failed", error=prediction_failure(prediction, target).message, **common)
    outputs = output_urls(prediction)
    if not outputs:
        return VideoJobState(status="failed", error=f"{target.provider} completed the prediction without a video.",
                             **common)
    video = GeneratedMedia(content_type=guess_type(outputs[0], "video/mp4"), url=outputs[0])
    seconds = await video_seconds(video, handle.get("seconds"), target, job=handle["id"])
    return VideoJobState(status="completed", progress=100, video=video,
                         usage=Usage(video_seconds=seconds, media_detail=handle.get("resolution") or ""), **common)


# --- input --------------------------------------------------------------------------------------

def wavespeed_size(size: str) -> str:
    """The gateway's "1024x768" as WaveSpeed writes sizes, "1024*768"."""
    return size.replace("x", "*")


def image_input(request: ImageRequest) -> dict[str, Any]:
    payload: dict[str, Any] = {"prompt": request.prompt}
    if request.n > 1:
        payload["num_images"] = request.n
    optional = {"size": wavespeed_size(request.size) if request.size else None, "seed": request.seed,
                "guidance_scale": request.guidance_scale, "num_inference_steps": request.steps,
                "negative_prompt": request.negative_prompt, "output_format": request.output_format}
    payload.update({name: value for name, value in optional.items() if value is not None})
    return payload


async def edit_inputs(request: ImageRequest, target: Target) -> dict[str, Any]:
    """The images (and mask) of an edit, under the names the model takes them by."""
    urls = [await media_reference(image, target) for image in request.images]
    names = model_inputs(target).get("image_fields")
    if names:
        if len(urls) != len(names):
            raise errors.UnsupportedFeature(
                f"'{target.upstream_model}' takes {len(names)} image(s) ({', '.join(names)}, in that order), "
                f"not {len(urls)}.", provider=target.provider)
        inputs: dict[str, Any] = dict(zip(names, urls, strict=True))
    else:
        inputs = {"image": urls[0]} if len(urls) == 1 else {"images": urls}
    if request.mask is not None:
        inputs["mask_image"] = await media_reference(request.mask, target)
    return inputs


def video_input(request: VideoRequest, target: Target) -> dict[str, Any]:
    """The video's inputs by WaveSpeed's common names (the model's own names applied by the caller)."""
    payload: dict[str, Any] = {"prompt": request.prompt}
    optional = {"negative_prompt": request.negative_prompt, "seed": request.seed,
                "size": wavespeed_size(request.size) if request.size else None,
                "resolution": requested_resolution(request),
                "aspect_ratio": request.aspect_ratio or size_ratio(request.size)}
    payload.update({name: value for name, value in optional.items() if value is not None})
    if request.duration_seconds is not None:
        payload["duration"] = duration_value(request.duration_seconds, model_inputs(target), int)
    return payload


# --- output -------------------------------------------------------------------------------------

def guess_type(url: str, default: str) -> str:
    return mimetypes.guess_type(urlsplit(url).path)[0] or default


def image_result(outputs: list[str], request: ImageRequest, target: Target) -> ImageResult:
    images = [GeneratedMedia(content_type=guess_type(url, "image/jpeg"), url=url) for url in outputs]
    return ImageResult(images=images, usage=Usage(images=len(images), media_detail=request.size or ""),
                       upstream_model=target.upstream_model)


# --- errors -------------------------------------------------------------------------------------

def prediction_failure(prediction: dict[str, Any], target: Target) -> errors.ProviderError:
    message = str(prediction.get("error") or "the prediction failed without saying why")
    code = prediction.get("code")
    text = f"{target.provider}'s prediction failed: {message}{f' (code {code})' if code else ''}"
    if code == CONTENT_MODERATION:
        return errors.ContentFiltered(text, provider=target.provider)
    if isinstance(code, int) and code in INPUT_ERRORS:
        return errors.ProviderBadRequest(text, provider=target.provider)
    return errors.ProviderUnavailable(text, provider=target.provider)


def message_of(payload: Any) -> str:
    return str(payload.get("message") or "") if isinstance(payload, dict) else ""


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    return error_for_status(status, headers, redacted_message(body, target, message_of), target,
                            auth_hint="the operator must check its key or account balance.",
                            not_found=f"{target.provider} has no model '{target.upstream_model}' (404).")


result_error = job_error_mapper(error_from_response, "prediction")
