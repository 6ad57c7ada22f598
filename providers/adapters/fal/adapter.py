"""fal.ai (WIRE_FORMATS 6): image, video and speech models, all through one queue
(providers.adapters.fal.queue: its calls, its request URLs and fal's errors).

Images and speech wait on the queue inside the call: the status endpoint is polled with backoff
within target.total_timeout (providers.adapters.queue), and the request is cancelled upstream
when the wait is given up. Video is a job the gateway polls: submit_video answers as soon as fal
has queued it, poll_video looks once; its handle keeps the request's URLs (and the seconds and
resolution asked for), so a restarted worker carries on.

Input, IR -> fal (fal's common field names; a model naming one differently declares it in the
provider's ``model_inputs`` quirk, see providers.adapters.queue):
    images   prompt, num_images (n), image_size (fal's preset name when size is a preset, else
             {width, height}), aspect_ratio, seed, guidance_scale, num_inference_steps (steps),
             negative_prompt, output_format, and quality and style as given (the gateway lets
             them through only for models whose media_options declare them, such as Recraft's styles)
    edits    the same, plus image_url (the image as sent, or as a data: URL; several images go
             as image_urls) and mask_url
    video    prompt, negative_prompt, seed, aspect_ratio, resolution, duration (the seconds as a
             string, "8"; a model taking "8s" declares duration: "{seconds}s"), fps, image_url
             (image-to-video). An OpenAI size, "1280x720", becomes aspect_ratio 16:9 and
             resolution 720p when neither was given
    speech   text, voice, speed. instructions -> UnsupportedFeature
    extra    merged in as given (the declared provider extras); the model's fixed inputs last

Output, fal -> IR:
    images   ``images`` (or one ``image``), each {url, content_type, width, height}: usage.images
             is how many came back, media_detail the "WxH" of the first (image prices are by size)
    video    ``video`` {url, content_type, duration?, width?, height?}: video_seconds is the
             duration fal reports, else the one asked for, else read from the file itself
             (providers.adapters.mp4); media_detail is the resolution, "720p" (the shorter side)
    speech   ``audio`` (or ``audio_file``, ``audio_url``): a File or a bare URL, downloaded;
             usage.characters is the input's length
"""

import mimetypes
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from providers import errors
from providers.adapters.base import Adapter
from providers.adapters.fal.queue import (
    DONE,
    cancel,
    check_status,
    failed,
    queue_request,
    queued_state,
    request_error,
    run_queued,
    status_request,
    submit,
)
from providers.adapters.http_calls import download, fetch_json
from providers.adapters.queue import (
    apply_model_inputs,
    is_missed_look,
    media_url,
    model_inputs,
    requested_resolution,
    video_input,
    video_seconds,
)
from providers.media_types import (
    GeneratedMedia,
    ImageRequest,
    ImageResult,
    SpeechRequest,
    SpeechResult,
    VideoJobState,
    VideoRequest,
)
from providers.types import Target, Usage

IMAGE_SIZE_PRESETS = {
    "1024x1024": "square_hd", "512x512": "square", "768x1024": "portrait_4_3", "576x1024": "portrait_16_9",
    "1024x768": "landscape_4_3", "1024x576": "landscape_16_9",
}
PRESET_SIZES = {preset: size for size, preset in IMAGE_SIZE_PRESETS.items()}
AUDIO_KEYS = ("audio", "audio_file", "audio_url")


class FalAdapter(Adapter):
    OPERATIONS = frozenset({"generate_images", "edit_images", "speech", "submit_video", "poll_video", "cancel_video"})

    wire_format = "fal"

    async def generate_images(self, request: ImageRequest, target: Target) -> ImageResult:
        output = await run_queued(image_input(request, target), target)
        return image_result(output, request, target)

    async def edit_images(self, request: ImageRequest, target: Target) -> ImageResult:
        if not request.images:
            raise errors.ProviderBadRequest("An image edit needs the image to change.", provider=target.provider)
        payload = image_input(request, target, edit=True)
        output = await run_queued(payload, target)
        return image_result(output, request, target)

    async def submit_video(self, request: VideoRequest, target: Target) -> VideoJobState:
        queued = await submit(video_input(request, target, duration=str, image_field="image_url"), target)
        handle = {**queued, "seconds": request.duration_seconds, "resolution": requested_resolution(request)}
        return VideoJobState(status="queued", handle=handle, progress=0, upstream_model=target.upstream_model)

    async def poll_video(self, state: VideoJobState, target: Target) -> VideoJobState:
        handle = state.handle
        try:
            status = await fetch_json(status_request(handle, target), target, request_error)
        except errors.ProviderNotFound as error:
            return VideoJobState(status="failed", handle=handle, error=error.message,
                                 upstream_model=target.upstream_model)
        if check_status(status, target) != DONE:
            return queued_state(status, state, target)
        try:
            output = await fetch_json(queue_request("GET", handle["response_url"], target), target, request_error)
        except errors.ProviderError as error:
            if is_missed_look(error):
                raise  # the video may still be there on the next look
            return VideoJobState(status="failed", handle=handle, error=error.message,
                                 upstream_model=target.upstream_model)
        if status.get("error"):
            return VideoJobState(status="failed", handle=handle, error=failed(status, target).message,
                                 upstream_model=target.upstream_model)
        return await completed_video(output, state, target)

    def can_cancel_video(self, state: VideoJobState) -> bool:
        return True

    async def cancel_video(self, state: VideoJobState, target: Target) -> None:
        await cancel(state.handle, target)

    async def speech(self, request: SpeechRequest, target: Target) -> SpeechResult:
        output = await run_queued(speech_input(request, target), target)
        audio = next((found for key in AUDIO_KEYS if (found := file_of(output.get(key)))), None)
        if audio is None:
            raise no_media(target, "audio")
        content = await download(audio["url"], target)
        return SpeechResult(audio=content, content_type=content_type_of(audio, "audio/mpeg"),
                            usage=Usage(characters=len(request.input)), upstream_model=target.upstream_model)


# --- input --------------------------------------------------------------------------------------

def image_input(request: ImageRequest, target: Target, *, edit: bool = False) -> dict[str, Any]:
    payload: dict[str, Any] = {"prompt": request.prompt, "num_images": request.n}
    if request.size:
        payload["image_size"] = image_size(request.size)
    optional = {"aspect_ratio": request.aspect_ratio, "seed": request.seed, "guidance_scale": request.guidance_scale,
                "num_inference_steps": request.steps, "negative_prompt": request.negative_prompt,
                "output_format": request.output_format, "quality": request.quality, "style": request.style}
    payload.update({name: value for name, value in optional.items() if value is not None})
    if edit:
        urls = [media_url(image) for image in request.images]
        payload.update({"image_url": urls[0]} if len(urls) == 1 else {"image_urls": urls})
        if request.mask is not None:
            payload["mask_url"] = media_url(request.mask)
    return apply_model_inputs({**payload, **request.extra}, model_inputs(target))


def image_size(size: str) -> str | dict[str, int]:
    if size in IMAGE_SIZE_PRESETS:
        return IMAGE_SIZE_PRESETS[size]
    width, _, height = size.partition("x")
    return {"width": int(width), "height": int(height)}


def speech_input(request: SpeechRequest, target: Target) -> dict[str, Any]:
    if request.instructions:
        raise errors.UnsupportedFeature("fal speech models take no instructions; leave them out.",
                                        provider=target.provider)
    payload: dict[str, Any] = {"text": request.input}
    if request.voice:
        payload["voice"] = request.voice
    if request.speed is not None:
        payload["speed"] = request.speed
    return apply_model_inputs({**payload, **request.extra}, model_inputs(target))


# --- output -------------------------------------------------------------------------------------

def file_of(value: Any) -> dict[str, Any] | None:
    """A fal File ({url, content_type, ...}) or a bare URL, as a File; None for anything else."""
    if isinstance(value, str) and value:
        return {"url": value}
    if isinstance(value, dict) and isinstance(value.get("url"), str):
        return value
    return None


def content_type_of(file: dict[str, Any], default: str) -> str:
    return file.get("content_type") or mimetypes.guess_type(urlsplit(file["url"]).path)[0] or default


def image_result(output: dict[str, Any], request: ImageRequest, target: Target) -> ImageResult:
    found = output.get("images")
    images = [file for item in (found if isinstance(found, list) else [output.get("image")]) if (file := file_of(item))]
    if not images:
        raise no_media(target, "images", output)
    first = images[0]
    detail = (f"{first['width']}x{first['height']}" if first.get("width") and first.get("height")
              else PRESET_SIZES.get(str(request.size), request.size or ""))
    media = [GeneratedMedia(content_type=content_type_of(image, "image/png"), url=image["url"],
                            revised_prompt=output.get("prompt") if output.get("prompt") != request.prompt else None)
             for image in images]
    return ImageResult(images=media, usage=Usage(images=len(media), media_detail=detail),
                       upstream_model=target.upstream_model)


async def completed_video(output: Any, state: VideoJobState, target: Target) -> VideoJobState:
    video = file_of(output.get("video")) if isinstance(output, dict) else None
    if video is None and isinstance(output, dict) and isinstance(output.get("videos"), list) and output["videos"]:
        video = file_of(output["videos"][0])
    if video is None:
        return VideoJobState(status="failed", handle=state.handle, error=no_media(target, "video", output).message,
                             upstream_model=target.upstream_model)
    media = GeneratedMedia(content_type=content_type_of(video, "video/mp4"), url=video["url"])
    seconds = reported_seconds(video) or await video_seconds(media, state.handle.get("seconds"), target,
                                                             job=state.handle.get("request_id"))
    if video.get("width") and video.get("height"):
        resolution = f"{min(int(video['width']), int(video['height']))}p"
    else:
        resolution = state.handle.get("resolution") or ""
    return VideoJobState(status="completed", handle=state.handle, progress=100, video=media,
                         usage=Usage(video_seconds=seconds, media_detail=resolution),
                         upstream_model=target.upstream_model)


def reported_seconds(video: dict[str, Any]) -> Decimal | None:
    value = video.get("duration")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return Decimal(str(value)).quantize(Decimal("0.001"))
    return None


def no_media(target: Target, what: str, output: Any = None) -> errors.ProviderUnavailable:
    keys = ", ".join(sorted(output)) if isinstance(output, dict) else "nothing"
    return errors.ProviderUnavailable(f"{target.provider}'s answer held no {what} (it had: {keys}).",
                                      provider=target.provider)
