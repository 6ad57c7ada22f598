"""The video jobs API: OpenAI's /v1/videos shape, over any provider's video models.

    POST   /v1/videos               create a job (JSON or multipart, as the openai SDK sends it);
                                    answers at once with the job (status queued), or with
                                    ``stream: true`` a server-sent event per change until it ends
    POST   /v1/video/generation     the same, for clients that speak duration_seconds/aspect_ratio
    GET    /v1/videos               the tenant's jobs, newest first (after, limit, order)
    GET    /v1/videos/{id}          one job: status, progress, error, the signed URL when done
    GET    /v1/videos/{id}/content  the video, from our storage (Range requests honoured)
    DELETE /v1/videos/{id}          cancel it (refunded) and delete its video

Both create endpoints take the same fields, decoded and checked against the model's
media_options in gateway.v1.video_request. The request is admitted here (plan, rate, the seconds
and the spend reserved: admit_media) and becomes a durable VideoJob (media.jobs);
``manage.py run_worker`` submits it and follows it to its end (media.worker). Leaving a stream
does not cancel the job; DELETE does.
"""

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse

from billing import entitlements
from billing.rate_limits import settle_rates
from gateway.access import get_video_job_for_tenant, get_video_jobs_for_tenant
from gateway.serving.call import Call
from gateway.serving.chains import find_model
from gateway.serving.media import admit_media
from gateway.v1 import sse
from gateway.v1.admission import authenticated_call
from gateway.v1.errors import GatewayError, api_view, bad_request
from gateway.v1.media import file_response, media_url
from gateway.v1.media import text_field as text
from gateway.v1.video_request import (
    chain_of,
    check_image_url,
    decode,
    fallbacks_of,
    flag,
    normalise,
)
from media import jobs
from media.files import store_media
from media.models import ACTIVE_STATUSES, MediaFile, MediaKind, VideoJob
from providers.blocking import run_blocking
from providers.pricing import cost_of
from providers.router import ModelInfo
from providers.types import Usage
from usage import recording
from usage.writer import writer

LIST_LIMIT = 100
KEEP_ALIVE_SECONDS = 15.0


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
    call = await authenticated_call(request, method="POST")
    fields, upload = decode(request)
    job = await admit_video(call, fields, upload)
    if job.params.get("stream"):
        return StreamingHttpResponse(progress_events(request, call.caller.tenant_id, job.id), content_type="text/event-stream",
                                     headers=sse.HEADERS)
    return JsonResponse(describe_job(request, job))


async def admit_video(call: Call, fields: dict, upload) -> VideoJob:
    """Check the request against the model and the plan, reserve its seconds and spend, and make
    the durable job the worker will submit (also for video/<model> in chat)."""
    public_id = text(fields, "model")
    if not public_id:
        raise bad_request("model is required, e.g. openai/sora-2. GET /v1/models lists the video models your plan "
                          "includes.", param="model", code="missing_required_parameter")
    caller = call.caller
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
    reservation = await admit_media(call, priciest, most=most)
    params.update(stream=stream, client_chain=bool(fallbacks_of(fields)))
    try:
        job = await run_blocking(make_job, caller, call.request_id, model, params, [m.public_id for m in chain],
                                 reservation, upload)
    except BaseException:
        writer.submit(recording.release, reservation)  # nothing will run: give the reservation back
        raise
    finally:
        settle_rates(reservation.rate_hold, tokens=0)  # the job runs on: this request is no longer in flight
    call.outcome.video_id = job.id
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
    caller = (await authenticated_call(request, method="GET")).caller
    job, file = await tenant_job(caller, video_id)
    return JsonResponse(describe_job(request, job, file))


async def delete_video(request, video_id: str):
    caller = (await authenticated_call(request, method="DELETE")).caller
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
    caller = (await authenticated_call(request, method="GET")).caller
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
    caller = (await authenticated_call(request, method="GET")).caller
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
