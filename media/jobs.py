"""Video jobs, from admission to their one settlement.

    create_job(...)        the durable row of an admitted request: queued, due at once (/v1/videos)
    cancel_job(...)        the client's DELETE: an active job ends cancelled and is refunded
    stop_upstream(...)     before that cancel: the provider's job stopped, or CancelNotPossible
    claim_due_jobs(...)    lease up to n due jobs for a worker (row locks on PostgreSQL:
                           select_for_update(skip_locked); a conditional UPDATE per job on SQLite)
    end_job(...)           a job's one end: the status change and its settlement, in one commit

A job's life: queued -> (submitted: handle saved) -> in_progress ... -> completed | failed |
cancelled. Every change a worker makes is conditional on the job still being active (and, for
steps in between, on the worker still holding it), so a client's cancel, a second worker that
took over an expired lease, or a worker killed half-way can never make a job end twice. The end
and the settlement are one transaction: the status UPDATE that wins, then usage.recording.settle
(unique request id) in the same commit. A completed job is billed the seconds the provider made;
a failed, timed-out or cancelled one settles zero units, which gives the reservation back. The
worker that drives jobs along this life is media.worker.
"""

import dataclasses
import hashlib
import logging
import secrets
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from media.files import media_storage, read_media
from media.models import ACTIVE_STATUSES, JobStatus, MediaFile, VideoJob
from providers import router
from providers.media_types import MediaInput, VideoJobState, VideoRequest
from providers.models import FALLBACK_REASONS, Model
from providers.pricing import TokenPrices
from providers.router import Deployment, ModelInfo
from providers.types import Target, Usage
from usage.models import Ending
from usage.recording import Reservation, Settlement, settle

log = logging.getLogger(__name__)

NO_PRICES = TokenPrices(Decimal(0), Decimal(0), Decimal(0))


def new_job_id() -> str:
    return f"video_{secrets.token_hex(16)}"


def create_job(*, tenant_id: int, api_key_id: int | None, request_id: str, model: ModelInfo, params: dict,
               chain: list[str], reserved: Decimal, month: date | None, seconds: Decimal) -> VideoJob:
    """The job of an admitted request, due for its worker at once."""
    now = timezone.now()
    return VideoJob.objects.create(
        id=new_job_id(), tenant_id=tenant_id, api_key_id=api_key_id, request_id=request_id, model=model.public_id,
        provider=model.provider, params=params, chain=chain, reserved=reserved, month=month, seconds=seconds,
        next_poll_at=now, deadline=now + timedelta(seconds=settings.VIDEO_JOB_TIMEOUT_SECONDS), created_at=now)


def key_fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


# --- ending a job: the status change and the settlement, in one commit -------------------------

@dataclasses.dataclass(slots=True)
class Ended:
    status: str
    usage: Usage = dataclasses.field(default_factory=Usage)
    error: str = ""
    error_code: str = ""
    http_status: int = 200
    ending: str = Ending.COMPLETED
    file: MediaFile | None = None


def reservation_of(job: VideoJob, prices: TokenPrices) -> Reservation:
    # units=Usage(): a media reservation; settle reads the units still held from its open row.
    return Reservation(request_id=job.request_id, tenant_id=job.tenant_id, api_key_id=job.api_key_id,
                       model=job.served_model or job.model, provider=job.provider, capability="video", prices=prices,
                       amount=job.reserved, month=job.month or job.created_at.date().replace(day=1), units=Usage())


def end_job(job: VideoJob, ended: Ended, prices: TokenPrices):
    """End an active job and settle it, atomically. Returns the usage record, or None when the
    job had already ended (cancelled by its client, or finished by another worker)."""
    now = timezone.now()
    reservation = reservation_of(job, prices)
    cost = reservation.cost_of(ended.usage)
    with transaction.atomic():
        won = VideoJob.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).update(
            status=ended.status, progress=100 if ended.status == JobStatus.COMPLETED else job.progress,
            seconds=ended.usage.video_seconds if ended.status == JobStatus.COMPLETED else job.seconds,
            cost=cost, file=ended.file, error=ended.error[:2000], error_code=ended.error_code,
            completed_at=now, claimed_until=None, claimed_by="", updated_at=now)
        if not won:
            return None
        record = settle(reservation, Settlement(
            upstream_model=job.upstream_model, streamed=bool(job.params.get("stream")), usage=ended.usage,
            latency_ms=int((now - job.created_at).total_seconds() * 1000), http_status=ended.http_status,
            error_type=ended.error_code, ending=ended.ending))
    if record is None:
        log.warning("video job %s ended, but its request %s had been settled already", job.pk, job.request_id)
    return record


def cancel_job(job: VideoJob) -> VideoJob:
    """The client's cancel: an active job ends cancelled, zero units settled (the refund). A job
    that has ended already is left as it is. Returns the job as it now stands."""
    VideoJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    end_job(job, Ended(JobStatus.CANCELLED, error="Cancelled by the client.", error_code="cancelled",
                       http_status=499, ending=Ending.CLIENT_GONE), NO_PRICES)
    return VideoJob.objects.get(pk=job.pk)


def delete_job_file(job: VideoJob) -> None:
    """Remove a finished job's video from the storage (the job row stays, for the record)."""
    if job.file_id is None:
        return
    file = MediaFile.objects.get(pk=job.file_id)
    media_storage().delete(file.storage_name)
    VideoJob.objects.filter(pk=job.pk).update(file=None)
    file.delete()


def discard_file(file: MediaFile) -> None:
    media_storage().delete(file.storage_name)
    file.delete()


# --- claiming ----------------------------------------------------------------------------------

def due_jobs(now) -> Q:
    return (Q(status__in=ACTIVE_STATUSES, next_poll_at__lte=now)
            & (Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)))


def claim_due_jobs(worker: str, limit: int, *, lease_seconds: float | None = None) -> list[VideoJob]:
    """Lease up to ``limit`` due jobs to ``worker``. Two workers never hold one job at a time:
    PostgreSQL locks the rows it hands out and skips rows another worker is claiming; SQLite
    (one writer at a time) claims each job with an UPDATE that only succeeds while it is free."""
    now = timezone.now()
    until = now + timedelta(seconds=lease_seconds or settings.VIDEO_WORKER_LEASE_SECONDS)
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            jobs = list(VideoJob.objects.select_for_update(skip_locked=True).filter(due_jobs(now))
                        .order_by("next_poll_at")[:limit])
            VideoJob.objects.filter(pk__in=[job.pk for job in jobs]).update(
                claimed_until=until, claimed_by=worker, updated_at=now)
    else:
        candidates = VideoJob.objects.filter(due_jobs(now)).order_by("next_poll_at").values_list("pk", flat=True)
        claimed = [pk for pk in list(candidates[:limit])
                   if VideoJob.objects.filter(due_jobs(now), pk=pk).update(
                       claimed_until=until, claimed_by=worker, updated_at=now)]
        jobs = list(VideoJob.objects.filter(pk__in=claimed))
    for job in jobs:
        job.claimed_until, job.claimed_by = until, worker
    return jobs


def renew_leases(worker: str, job_ids: list[str]) -> None:
    until = timezone.now() + timedelta(seconds=settings.VIDEO_WORKER_LEASE_SECONDS)
    VideoJob.objects.filter(pk__in=job_ids, claimed_by=worker, status__in=ACTIVE_STATUSES).update(claimed_until=until)


def release_leases(worker: str) -> int:
    """Hand back every job the worker holds (a clean stop: others may take them at once)."""
    return VideoJob.objects.filter(claimed_by=worker).update(claimed_until=None, claimed_by="")


def update_held_job(job: VideoJob, worker: str, **fields) -> bool:
    """Change an active job the worker still holds; False if it ended or was taken over."""
    fields.setdefault("updated_at", timezone.now())
    return bool(VideoJob.objects.filter(pk=job.pk, claimed_by=worker, status__in=ACTIVE_STATUSES).update(**fields))


def poll_delay(attempts: int) -> float:
    return min(settings.VIDEO_POLL_MAX_SECONDS, settings.VIDEO_POLL_SECONDS * 1.5 ** min(attempts, 20))


def next_poll(job: VideoJob, attempts: int):
    """When to look again: after the backoff, but no later than the deadline (when it times out)."""
    return min(timezone.now() + timedelta(seconds=poll_delay(attempts)), job.deadline)


# --- the request, as the adapter takes it ------------------------------------------------------

def video_request_of(job: VideoJob, public_id: str) -> VideoRequest:
    params = job.params
    image = None
    if params.get("image_file"):
        file = MediaFile.objects.get(pk=params["image_file"], tenant_id=job.tenant_id)
        image = MediaInput(content=read_media(file), content_type=file.content_type,
                           filename=params.get("image_filename") or "")
    elif params.get("image_url"):
        image = MediaInput(url=params["image_url"])
    return VideoRequest(
        model=public_id, prompt=params.get("prompt") or "", duration_seconds=params.get("duration_seconds"),
        aspect_ratio=params.get("aspect_ratio"), resolution=params.get("resolution"), size=params.get("size"),
        negative_prompt=params.get("negative_prompt"), seed=params.get("seed"), fps=params.get("fps"), image=image)


def chain_of(job: VideoJob, catalog: router.Catalog) -> router.Chain:
    """The deployments of the job's chain still in the catalog, in order. The client's own chain
    falls back on any of FALLBACK_REASONS; the operator's on the first model's fallback_on."""
    deployments = [deployment for public_id in job.chain if public_id in catalog.models
                   for deployment in catalog.deployments_for(public_id)]
    first = catalog.models.get(job.chain[0]) if job.chain else None
    if job.params.get("client_chain") or first is None:
        return router.Chain(deployments, frozenset(FALLBACK_REASONS))
    return router.Chain(deployments, first.fallback_on)


def locate(job: VideoJob, catalog: router.Catalog) -> tuple[Deployment, Target] | None:
    """The deployment and credential that accepted the job, to poll it with the same."""
    if job.served_model not in catalog.models:
        return None
    for deployment in catalog.deployments_for(job.served_model):
        if (deployment.model.provider, deployment.model.upstream_model) != (job.provider, job.upstream_model):
            continue
        for target in deployment.targets:
            if key_fingerprint(target.api_key) == job.key_fingerprint:
                return deployment, target
    return None


def prices_of(public_id: str, catalog: router.Catalog) -> TokenPrices:
    """The model's prices; from its row if it was disabled after the job was admitted."""
    model = catalog.models.get(public_id)
    if model is not None:
        return model.prices
    row = Model.objects.filter(public_id=public_id).first()
    if row is None:
        return NO_PRICES
    return TokenPrices(row.input_price, row.output_price, row.cached_input_price, row.cache_write_price,
                       router.media_prices_of(row))


# --- a client's cancel, at the provider --------------------------------------------------------

class CancelNotPossible(Exception):
    """The provider cannot stop this job now: it will finish it and bill it, so the gateway must too."""

    def __init__(self, provider: str):
        super().__init__(provider)
        self.provider = provider


async def stop_upstream(job: VideoJob) -> None:
    """Before a client's cancel is honoured: stop the provider's job, where it has one. Raises
    CancelNotPossible when the provider cannot stop it (it would still bill it), and the
    ProviderError when asking failed (the job goes on, and is billed when it ends)."""
    if not job.handle:
        return
    located = locate(job, await router.get_catalog())
    if located is None:
        return  # no longer configured: nothing we could ask, nothing it can bill through us
    deployment, target = located
    state = VideoJobState(status=job.status, handle=job.handle)
    if not deployment.adapter.can_cancel_video(state):
        raise CancelNotPossible(target.provider)
    await deployment.adapter.cancel_video(state, target)

