"""The video jobs API: OpenAI's /v1/videos shape, over any provider's video models.

    POST   /v1/videos               create a job (JSON or multipart, as the openai SDK sends it);
                                    answers at once with the job (status queued), or with
                                    ``stream: true`` a server-sent event per change until it ends
    POST   /v1/video/generation     the same, for clients that speak duration_seconds/aspect_ratio
    GET    /v1/videos               the tenant's jobs, newest first (after, limit, order)
    GET    /v1/videos/{id}          one job: status, progress, error, the signed URL when done
    GET    /v1/videos/{id}/content  the video, from our storage (Range requests honoured)
    DELETE /v1/videos/{id}          cancel it (refunded) and delete its video

Both create endpoints take the same fields: ``model``, ``prompt``, ``seconds`` or
``duration_seconds``, ``size`` ("1280x720") or ``aspect_ratio`` + ``resolution``,
``input_reference`` (a file, or ``{"image_url"}``) or ``image_url`` (image-to-video), and, where
the model declares them (media_options ``extras``), ``negative_prompt``, ``seed``, ``fps``; plus
``fallback_models`` (or ``models``) and ``stream``. Everything is checked against the model's
media_options before anything is reserved, and refused with a 400 listing what it accepts
(media_options ``image``: "required" or "none" says whether a first frame must or may not come).

The request is admitted here (plan, rate, the seconds and the spend reserved: admit_media) and
becomes a durable VideoJob; ``manage.py run_worker`` submits it and follows it to its end
(media.jobs). Leaving a stream does not cancel the job; DELETE does.
"""

import asyncio
import json
import math
from collections.abc import AsyncIterator
from decimal import Decimal

from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse

from billing import entitlements
from gateway.access import get_video_job_for_tenant, get_video_jobs_for_tenant
from gateway.v1 import sse
from gateway.v1.admission import admit_media_request, authenticated_caller, find_model, read_body
from gateway.v1.errors import GatewayError, api_view, bad_request
from gateway.v1.json_body import parse_json_object
from gateway.v1.media import (
    check_choice,
    check_extras,
    check_prompt,
    default_choice,
    file_response,
    media_url,
)
from gateway.v1.media import (
    text_field as text,
)
from media import jobs
from media.files import store_media
from media.models import ACTIVE_STATUSES, MediaFile, MediaKind, VideoJob
from providers import outbound, router
from providers.blocking import run_blocking
from providers.pricing import cost_of
from providers.router import ModelInfo
from providers.types import Usage
from usage import recording
from usage.writer import writer

FIELDS = {"model", "prompt", "seconds", "duration_seconds", "size", "aspect_ratio", "resolution", "input_reference",
          "image_url", "negative_prompt", "seed", "fps", "fallback_models", "models", "stream", "user"}
EXTRAS = ("negative_prompt", "seed", "fps")
MAX_FALLBACKS = 5
LIST_LIMIT = 100
KEEP_ALIVE_SECONDS = 15.0


# --- decoding --------------------------------------------------------------------------------

def decode(request) -> tuple[dict, object | None]:
    """The request's fields and its uploaded first frame (multipart), or a 400 saying what is wrong."""
    body = read_body(request)
    content_type = request.META.get("CONTENT_TYPE", "")
    if content_type.startswith("multipart/form-data"):
        fields = {name: request.POST.getlist(name)[-1] for name in request.POST}
        upload = request.FILES.get("input_reference")
    else:
        fields = parse_json_object(body or b"{}", content_type)
        upload = None
    unknown = sorted(set(fields) - FIELDS - ({"input_reference"} if upload else set()))
    if unknown:
        raise bad_request(f"Unknown parameter '{unknown[0]}'. A video request takes: {', '.join(sorted(FIELDS))}.",
                          param=unknown[0], code="unknown_parameter")
    return fields, upload


def integer(fields: dict, name: str) -> int | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise bad_request(f"{name} must be a whole number, not {value!r}.", param=name)
    return int(value)


def flag(fields: dict, name: str) -> bool:
    value = fields.get(name, False)
    if isinstance(value, str):
        value = {"true": True, "false": False, "1": True, "0": False, "": False}.get(value.lower(), value)
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false, not {value!r}.", param=name)
    return value


def image_url_of(fields: dict) -> str | None:
    reference = fields.get("input_reference")
    url = text(fields, "image_url")
    if isinstance(reference, dict):
        if reference.get("file_id"):
            raise bad_request("input_reference.file_id is not supported here; send the image itself (multipart "
                              "input_reference) or input_reference.image_url.", param="input_reference")
        url = url or reference.get("image_url")
    elif reference not in (None, ""):
        raise bad_request("input_reference must be a file (multipart) or {\"image_url\": ...}.", param="input_reference")
    if url is None:
        return None
    if not isinstance(url, str) or (url.startswith("data:") and not url.startswith("data:image/")):
        raise bad_request("image_url must be an https:// URL or a data:image/...;base64 URL.", param="image_url")
    return url


async def check_image_url(url: str) -> None:
    """The outbound-fetch policy, at admission: a URL the worker may not read is refused now,
    before anything is reserved or queued."""
    try:
        await outbound.check_url(url)
    except outbound.UrlRefused as exc:
        raise bad_request(f"image_url refused: {exc.message}", param="image_url", code="invalid_url") from exc


def fallbacks_of(fields: dict) -> list[str]:
    chain = fields.get("fallback_models") or fields.get("models") or []
    if isinstance(chain, str):  # multipart: a JSON list or comma-separated ids
        chain = json.loads(chain) if chain.startswith("[") else [item.strip() for item in chain.split(",")]
    if not isinstance(chain, list) or not all(isinstance(item, str) and item for item in chain):
        raise bad_request("fallback_models must be a list of model ids.", param="fallback_models")
    if len(chain) > MAX_FALLBACKS:
        raise bad_request(f"fallback_models lists {len(chain)} models; at most {MAX_FALLBACKS}.", param="fallback_models")
    return chain


# --- sizes, ratios and resolutions -----------------------------------------------------------

def dimensions(size: str, *, param: str = "size") -> tuple[int, int]:
    width, x, height = size.partition("x")
    if not (x and width.isdigit() and height.isdigit() and int(width) and int(height)):
        raise bad_request(f"{param} must be WIDTHxHEIGHT, e.g. 1280x720, not {size!r}.", param=param)
    return int(width), int(height)


def resolution_of(size: str) -> str:
    return f"{min(dimensions(size))}p"


def aspect_of(size: str) -> str:
    width, height = dimensions(size)
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def size_for(aspect_ratio: str, resolution: str) -> str:
    """The frame of a ratio at a resolution: 16:9 at 720p is 1280x720, 9:16 at 1080p 1080x1920."""
    across, _, down = aspect_ratio.partition(":")
    lines = resolution.removesuffix("p")
    if not (across.isdigit() and down.isdigit() and lines.isdigit() and int(across) and int(down)):
        raise bad_request(f"aspect_ratio must be like 16:9 and resolution like 720p, not {aspect_ratio!r} and "
                          f"{resolution!r}.", param="aspect_ratio")
    a, b, lines_ = int(across), int(down), int(lines)
    return f"{round(lines_ * a / b)}x{lines_}" if a >= b else f"{lines_}x{round(lines_ * b / a)}"


def frame_of(model: ModelInfo, size: str | None, aspect_ratio: str | None, resolution: str | None) -> dict:
    """Size, aspect ratio and resolution, each filled in from the others and the model's
    defaults, and each checked against what the model declares."""
    sizes = model.media_options.get("sizes")
    if size is None and sizes and (aspect_ratio or resolution):
        matching = [candidate for candidate in sizes
                    if (aspect_ratio is None or aspect_of(candidate) == aspect_ratio)
                    and (resolution is None or resolution_of(candidate) == resolution)]
        if not matching:
            raise bad_request(f"'{model.public_id}' makes no video at {aspect_ratio or 'any ratio'} and "
                              f"{resolution or 'any resolution'}; its sizes are: {', '.join(sizes)}.", param="size")
        size = matching[0]
    if size is None and sizes:
        size = default_choice(model, "sizes", "default_size")
    if size is not None:
        check_choice(model, "sizes", size, param="size")
        aspect_ratio, resolution = aspect_ratio or aspect_of(size), resolution or resolution_of(size)
        if (aspect_ratio, resolution) != (aspect_of(size), resolution_of(size)):
            raise bad_request(f"size {size} is {aspect_of(size)} at {resolution_of(size)}, which contradicts "
                              f"aspect_ratio/resolution; send one or the other.", param="size")
    aspect_ratio = aspect_ratio or default_choice(model, "aspect_ratios", "default_aspect_ratio") or "16:9"
    resolution = resolution or default_choice(model, "resolutions", "default_resolution") or "720p"
    if size is None:
        check_choice(model, "aspect_ratios", aspect_ratio, param="aspect_ratio")
        check_choice(model, "resolutions", resolution, param="resolution")
        size = size_for(aspect_ratio, resolution)
    return {"size": size, "aspect_ratio": aspect_ratio, "resolution": resolution}


def normalise(model: ModelInfo, fields: dict, *, has_upload: bool) -> dict:
    """The job's parameters for ``model``: every value the client sent, checked, and the rest
    filled from the model's defaults."""
    prompt = check_prompt(model, fields.get("prompt"))
    seconds, duration = integer(fields, "seconds"), integer(fields, "duration_seconds")
    if seconds is not None and duration is not None and seconds != duration:
        raise bad_request(f"seconds ({seconds}) and duration_seconds ({duration}) disagree; send one.", param="seconds")
    duration = duration if duration is not None else seconds
    if duration is None:
        duration = default_choice(model, "durations", "default_duration")
    if duration is None:
        raise bad_request(f"seconds is required for '{model.public_id}'.", param="seconds")
    check_choice(model, "durations", duration, param="seconds")
    params = {"prompt": prompt, "duration_seconds": int(duration),
              **frame_of(model, text(fields, "size"), text(fields, "aspect_ratio"), text(fields, "resolution"))}
    extras = {"negative_prompt": text(fields, "negative_prompt"), "seed": integer(fields, "seed"),
              "fps": integer(fields, "fps")}
    extras = {name: value for name, value in extras.items() if value is not None}
    check_extras(model, extras)
    params.update(extras)
    image_url = image_url_of(fields)
    if image_url:
        params["image_url"] = image_url
    check_image(model, given=has_upload or image_url is not None)
    return params


def check_image(model: ModelInfo, *, given: bool) -> None:
    needs = model.media_options.get("image", "optional")
    if needs == "required" and not given:
        raise bad_request(f"'{model.public_id}' makes videos from an image: send the first frame as image_url or "
                          "input_reference.", param="image_url", code="missing_required_parameter")
    if needs == "none" and given:
        raise bad_request(f"'{model.public_id}' makes videos from text only; leave out image_url/input_reference.",
                          param="image_url")


def fits(model: ModelInfo, params: dict, *, has_upload: bool) -> bool:
    """Whether a fallback model takes the parameters the job was normalised to."""
    options = model.media_options
    for option, value in (("durations", params["duration_seconds"]), ("aspect_ratios", params["aspect_ratio"]),
                          ("resolutions", params["resolution"])):
        if options.get(option) is not None and value not in options[option]:
            return False
    if options.get("sizes") is not None and params["size"] not in options["sizes"]:
        return False
    if any(name in params and name not in options.get("extras", []) for name in EXTRAS):
        return False
    needs, given = options.get("image", "optional"), has_upload or "image_url" in params
    return not ((needs == "required" and not given) or (needs == "none" and given))


async def chain_of(caller, model: ModelInfo, fields: dict, params: dict, *, has_upload: bool) -> list[ModelInfo]:
    """The models to submit to, in order: this one, then the client's fallbacks (each must exist,
    be on the plan and take the request, else a clear error) or the operator's (those that cannot
    are left out)."""
    chain = [model]
    client_chain = fallbacks_of(fields)
    for public_id in client_chain:
        fallback, _ = await find_model(public_id, capability="video")
        entitlements.check_model(caller, fallback)
        if not fits(fallback, params, has_upload=has_upload):
            raise bad_request(f"Fallback '{public_id}' cannot make this video ({params['duration_seconds']}s, "
                              f"{params['size']}); GET /v1/models lists each model's media options.",
                              param="fallback_models")
        chain.append(fallback)
    if client_chain:
        return chain
    catalog = await router.get_catalog()
    for public_id in model.fallbacks:
        fallback = catalog.models.get(public_id)
        if (fallback is not None and fallback.capability == "video" and entitlements.is_model_allowed(caller, fallback)
                and fits(fallback, params, has_upload=has_upload)):
            chain.append(fallback)
    return chain


# --- the video object ------------------------------------------------------------------------

def describe_job(request, job: VideoJob, file: MediaFile | None = None) -> dict:
    """A job in OpenAI's Video shape, plus the signed URL of the stored video and what it cost."""
    params = job.params
    seconds = job.seconds if job.seconds else Decimal(params.get("duration_seconds") or 0)
    body = {
        "id": job.id, "object": "video", "model": job.served_model or job.model, "status": job.status,
        "progress": job.progress, "created_at": int(job.created_at.timestamp()),
        "completed_at": int(job.completed_at.timestamp()) if job.completed_at else None, "expires_at": None,
        "size": params.get("size"), "seconds": f"{seconds.normalize():f}", "prompt": params.get("prompt"),
        "remixed_from_video_id": None,
        "error": {"code": job.error_code or "failed", "message": job.error} if job.status in ("failed", "cancelled")
        else None,
        "aspect_ratio": params.get("aspect_ratio"), "resolution": params.get("resolution"),
        "provider": job.provider or None, "request_id": job.request_id,
        "cost": str(job.cost) if not job.is_active else None, "url": None,
    }
    if file is not None:
        body["url"] = media_url(request, file)
    return body


def load_job(tenant_id: int, job_id: str) -> tuple[VideoJob, MediaFile | None]:
    job = get_video_job_for_tenant(tenant_id, job_id)
    return job, (MediaFile.objects.get(pk=job.file_id) if job.file_id else None)


def not_found(job_id: str) -> GatewayError:
    return GatewayError(404, f"No video job '{job_id}'. GET /v1/videos lists the jobs of your organisation.",
                        param="video_id", code="video_not_found")


async def tenant_job(caller, job_id: str) -> tuple[VideoJob, MediaFile | None]:
    try:
        return await run_blocking(load_job, caller.tenant_id, job_id)
    except VideoJob.DoesNotExist:
        raise not_found(job_id) from None


# --- endpoints -------------------------------------------------------------------------------

@api_view
async def videos(request):
    """POST creates a job, GET lists them."""
    if request.method == "GET":
        return await list_jobs(request)
    return await create_video(request)


@api_view
async def video_generation(request):
    return await create_video(request)


async def create_video(request):
    caller = await authenticated_caller(request, method="POST")
    fields, upload = decode(request)
    job = await admit_video(request, caller, fields, upload)
    if job.params.get("stream"):
        return StreamingHttpResponse(progress_events(request, caller.tenant_id, job.id), content_type="text/event-stream",
                                     headers=sse.HEADERS)
    return JsonResponse(describe_job(request, job))


async def admit_video(request, caller, fields: dict, upload) -> VideoJob:
    """Check the request against the model and the plan, reserve its seconds and spend, and make
    the durable job the worker will submit (also for video/<model> in chat)."""
    public_id = text(fields, "model")
    if not public_id:
        raise bad_request("model is required, e.g. openai/sora-2. GET /v1/models lists the video models your plan "
                          "includes.", param="model", code="missing_required_parameter")
    model, _ = await find_model(public_id, capability="video")
    entitlements.check_model(caller, model)
    params = normalise(model, fields, has_upload=upload is not None)
    if "image_url" in params:
        await check_image_url(params["image_url"])
    stream = flag(fields, "stream")
    chain = await chain_of(caller, model, fields, params, has_upload=upload is not None)
    most = Usage(video_seconds=Decimal(params["duration_seconds"]),
                 media_detail=f"{params['size']}/{params['resolution']}")
    priciest = max(chain, key=lambda candidate: cost_of(candidate.prices, most))
    reservation = await admit_media_request(request, caller, priciest, most=most)
    params.update(stream=stream, client_chain=bool(fallbacks_of(fields)))
    try:
        job = await run_blocking(make_job, caller, request.request_id, model, params, [m.public_id for m in chain],
                                 reservation, upload)
    except BaseException:
        writer.submit(recording.release, reservation)  # nothing will run: give the reservation back
        raise
    request.gateway_headers["x-tollgate-video-id"] = job.id
    return job


def make_job(caller, request_id: str, model: ModelInfo, params: dict, chain: list[str], reservation,
             upload) -> VideoJob:
    if upload is not None:  # kept until the worker submits it, which may be after a restart
        image = store_media(tenant_id=caller.tenant_id, request_id=request_id, kind=MediaKind.IMAGE,
                            content=upload.read(), content_type=upload.content_type or "image/png")
        params = {**params, "image_file": str(image.id), "image_filename": upload.name or ""}
    return jobs.create_job(tenant_id=caller.tenant_id, api_key_id=caller.key_id, request_id=request_id, model=model,
                           params=params, chain=chain, reserved=reservation.amount, month=reservation.month,
                           seconds=Decimal(params["duration_seconds"]))


async def watch_job(tenant_id: int, job_id: str) -> AsyncIterator[tuple[VideoJob, MediaFile | None] | None]:
    """The job each time its status or progress changes, until it ends; None after each
    KEEP_ALIVE_SECONDS without a change (for a keep-alive)."""
    seen = None
    quiet = 0.0
    while True:
        job, file = await run_blocking(load_job, tenant_id, job_id)
        now = (job.status, job.progress)
        if now != seen:
            seen, quiet = now, 0.0
            yield job, file
        elif quiet >= KEEP_ALIVE_SECONDS:
            quiet = 0.0
            yield None
        if not job.is_active:
            return
        await asyncio.sleep(settings.VIDEO_STREAM_POLL_SECONDS)
        quiet += settings.VIDEO_STREAM_POLL_SECONDS


async def progress_events(request, tenant_id: int, job_id: str):
    """The job as an event each time its status or progress changes, until it ends."""
    async for change in watch_job(tenant_id, job_id):
        if change is None:
            yield b": keep-alive\n\n"
            continue
        job, file = change
        yield sse.event({"type": f"video.{job.status}", "video": describe_job(request, job, file)})
    yield sse.DONE


@api_view
async def video(request, video_id: str):
    """GET one job, DELETE cancels it."""
    if request.method == "DELETE":
        return await delete_video(request, video_id)
    caller = await authenticated_caller(request, method="GET")
    job, file = await tenant_job(caller, video_id)
    return JsonResponse(describe_job(request, job, file))


async def delete_video(request, video_id: str):
    caller = await authenticated_caller(request, method="DELETE")
    job, _ = await tenant_job(caller, video_id)
    if job.status in ACTIVE_STATUSES:
        try:
            await jobs.stop_upstream(job)
        except jobs.CancelNotPossible as exc:
            raise GatewayError(409, f"{exc.provider} cannot stop video job '{video_id}' once it has started: it "
                               "will finish and be billed as usual. Wait until it is completed; DELETE then removes "
                               "its video.", type="invalid_request_error", code="cancel_not_possible") from exc
    job = await run_blocking(jobs.cancel_job, job)
    await run_blocking(jobs.delete_job_file, job)
    return JsonResponse({"id": job.id, "object": "video.deleted", "deleted": True, "status": job.status})


@api_view
async def video_content(request, video_id: str):
    caller = await authenticated_caller(request, method="GET")
    variant = request.GET.get("variant", "video")
    if variant != "video":
        raise bad_request(f"variant '{variant}' is not available here; only the video itself (variant=video).",
                          param="variant")
    job, file = await tenant_job(caller, video_id)
    if file is None:
        if job.status == "completed":
            raise GatewayError(404, f"The video of job '{video_id}' was deleted.", code="video_deleted")
        raise GatewayError(409, f"Job '{video_id}' is {job.status.replace('_', ' ')}: there is no video to download"
                           f"{' yet; poll GET /v1/videos/' + video_id + ' until it is completed' if job.is_active else ''}.",
                           code="video_not_ready")
    return file_response(request, file)


async def list_jobs(request):
    caller = await authenticated_caller(request, method="GET")
    order = request.GET.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request(f"order must be asc or desc, not {order!r}.", param="order")
    try:
        limit = int(request.GET.get("limit", "20"))
    except ValueError:
        raise bad_request("limit must be a whole number.", param="limit") from None
    if not 1 <= limit <= LIST_LIMIT:
        raise bad_request(f"limit must be between 1 and {LIST_LIMIT}.", param="limit")
    after = request.GET.get("after")
    page = await run_blocking(page_of_jobs, caller.tenant_id, after, limit, order)
    data = [describe_job(request, job, file) for job, file in page[:limit]]
    return JsonResponse({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                         "last_id": data[-1]["id"] if data else None, "has_more": len(page) > limit})


def page_of_jobs(tenant_id: int, after: str | None, limit: int, order: str) -> list[tuple[VideoJob, MediaFile | None]]:
    """Up to limit + 1 jobs (one more tells whether there are more) after the job ``after``."""
    ordering = ("created_at", "id") if order == "asc" else ("-created_at", "-id")
    jobs_ = get_video_jobs_for_tenant(tenant_id).order_by(*ordering)
    if after:
        try:
            cursor = get_video_job_for_tenant(tenant_id, after)
        except VideoJob.DoesNotExist:
            raise not_found(after) from None
        if order == "asc":
            jobs_ = jobs_.filter(created_at__gte=cursor.created_at).exclude(created_at=cursor.created_at, id__lte=cursor.id)
        else:
            jobs_ = jobs_.filter(created_at__lte=cursor.created_at).exclude(created_at=cursor.created_at, id__gte=cursor.id)
    page = list(jobs_.select_related("file")[: limit + 1])
    return [(job, job.file) for job in page]
