"""Video jobs, from admission to their one settlement.

    create_job(...)        the durable row of an admitted request: queued, due at once (/v1/videos)
    cancel_job(...)        the client's DELETE: an active job ends cancelled and is refunded
    claim_due_jobs(...)    lease up to n due jobs for a worker (row locks on PostgreSQL:
                           select_for_update(skip_locked); a conditional UPDATE per job on SQLite)
    Worker                 the loop of ``manage.py run_worker``: claims due jobs, advances each one
                           step (submit along its chain, or poll), renews its leases, and at a stop
                           hands back what it holds

A job's life: queued -> (submitted: handle saved) -> in_progress ... -> completed | failed |
cancelled. Every change a worker makes is conditional on the job still being active (and, for
steps in between, on the worker still holding it), so a client's cancel, a second worker that
took over an expired lease, or a worker killed half-way can never make a job end twice. The end
and the settlement are one transaction: the status UPDATE that wins, then usage.recording.settle
(unique request id) in the same commit. A completed job is billed the seconds the provider made;
a failed, timed-out or cancelled one settles zero units, which gives the reservation back.

Submission walks the job's chain (the model, then its fallbacks or the client's): a provider
that does not accept the job hands it to the next (providers.router.call_chain). A retryable
failure of the whole chain, or of a poll, is tried again later with backoff, until the deadline.
"""

import asyncio
import dataclasses
import functools
import hashlib
import logging
import os
import secrets
import socket
import time
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from media.files import astore_media, media_storage, read_media
from media.models import ACTIVE_STATUSES, JobStatus, MediaFile, MediaKind, VideoJob
from providers import errors, router
from providers.blocking import run_blocking
from providers.http import close_client
from providers.models import FALLBACK_REASONS, Model
from providers.pricing import TokenPrices
from providers.router import Deployment, ModelInfo
from providers.types import MediaInput, Target, Usage, VideoJobState, VideoRequest
from usage.live import publish_settled
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


# --- the worker --------------------------------------------------------------------------------

def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Drives video jobs to their end. Any number may run, in any number of processes."""

    def __init__(self, *, name: str | None = None, concurrency: int | None = None):
        self.name = name or worker_name()
        self.concurrency = concurrency or settings.VIDEO_WORKER_CONCURRENCY
        self.in_flight: dict[str, asyncio.Task] = {}
        self.woken = asyncio.Event()

    async def run(self, stop: asyncio.Event, *, grace_seconds: float = 10.0) -> None:
        """Work until ``stop`` is set; then give in-flight steps ``grace_seconds`` to finish,
        cancel the rest and hand back every lease."""
        heartbeat = asyncio.create_task(self.keep_leases())
        try:
            while not stop.is_set():
                free = self.concurrency - len(self.in_flight)
                jobs = await run_blocking(claim_due_jobs, self.name, free) if free > 0 else []
                for job in jobs:
                    self.start(job)
                if free <= 0:
                    await self.pause(stop, until_free=True)
                elif len(jobs) < free:
                    # No more jobs are due: a step ending frees a slot but makes none due.
                    await self.pause(stop, until_free=False)
        finally:
            heartbeat.cancel()
            if self.in_flight:
                await asyncio.wait(list(self.in_flight.values()), timeout=grace_seconds)
            for task in list(self.in_flight.values()):
                task.cancel()
            await asyncio.gather(*self.in_flight.values(), heartbeat, return_exceptions=True)
            released = await run_blocking(release_leases, self.name)
            if released:
                log.info("worker %s handed back %d job(s)", self.name, released)
            await close_client()

    async def pause(self, stop: asyncio.Event, *, until_free: bool) -> None:
        """Until the next look for due jobs: the idle interval, a stop, or (``until_free``, when
        every slot is taken) a step finishing."""
        self.woken.clear()
        waiters = [asyncio.ensure_future(stop.wait())]
        if until_free:
            waiters.append(asyncio.ensure_future(self.woken.wait()))
        await asyncio.wait(waiters, timeout=settings.VIDEO_WORKER_IDLE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()

    def start(self, job: VideoJob) -> None:
        task = asyncio.create_task(self.advance(job), name=f"video-job-{job.pk}")
        self.in_flight[job.pk] = task

        def done(_task: asyncio.Task) -> None:
            self.in_flight.pop(job.pk, None)
            self.woken.set()

        task.add_done_callback(done)

    async def keep_leases(self) -> None:
        while True:
            await asyncio.sleep(settings.VIDEO_WORKER_LEASE_SECONDS / 3)
            if self.in_flight:
                try:
                    await run_blocking(renew_leases, self.name, list(self.in_flight))
                except Exception:
                    log.exception("worker %s could not renew its leases", self.name)

    async def advance(self, job: VideoJob) -> None:
        """One step of one job. Never raises: a step that fails unexpectedly leaves the job to be
        tried again once its lease is handed back."""
        try:
            catalog = await router.get_catalog()
            if timezone.now() >= job.deadline:
                await self.time_out(job, catalog)
            elif not job.handle:
                await self.submit(job, catalog)
            else:
                await self.poll(job, catalog)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("video job %s: the worker failed on this step", job.pk)
            try:
                await self.failed_step(job, await router.get_catalog(), errors.ProviderUnavailable(
                    "The gateway failed on this job's step."), what="working on it")
            except Exception:
                log.exception("video job %s: could not hand it back; its lease will expire", job.pk)

    async def update(self, job: VideoJob, **fields) -> bool:
        return await run_blocking(functools.partial(update_held_job, job, self.name, **fields))

    async def submit(self, job: VideoJob, catalog: router.Catalog) -> None:
        chain = chain_of(job, catalog)
        if not chain.deployments:
            await self.end(job, catalog, Ended(
                JobStatus.FAILED, error=f"No provider can serve '{job.model}' any more; nothing was generated.",
                error_code="model_not_found", http_status=404, ending=Ending.UPSTREAM_ERROR))
            return
        request = await run_blocking(video_request_of, job, job.model)
        accepted: list[Target] = []

        async def submit_to(adapter, target: Target) -> VideoJobState:
            state = await adapter.submit_video(dataclasses.replace(request, model=job.model), target)
            accepted.append(target)
            return state

        trace = router.Trace()
        try:
            state = await router.call_chain(chain, submit_to, trace)
        except errors.ProviderError as error:
            await self.failed_step(job, catalog, error, what="submitting")
            return
        target, model = accepted[-1], trace.model
        kept = await self.update(
            job, handle=state.handle, status=JobStatus.IN_PROGRESS if state.status == "in_progress"
            else JobStatus.QUEUED, progress=state.progress or 0,
            provider=target.provider, served_model=model.public_id, upstream_model=target.upstream_model,
            key_fingerprint=key_fingerprint(target.api_key), claimed_until=None, claimed_by="", error="",
            failures=0, next_poll_at=next_poll(job, 0))
        if not kept:
            # Cancelled (or taken over) while the provider was accepting it: stop the provider's job.
            log.info("video job %s ended while it was being submitted; cancelling it at %s", job.pk, target.provider)
            await cancel_upstream(trace_deployment(chain, model, target), target, state)

    async def poll(self, job: VideoJob, catalog: router.Catalog) -> None:
        located = locate(job, catalog)
        if located is None:
            await self.end(job, catalog, Ended(
                JobStatus.FAILED, error=f"Provider {job.provider} is no longer configured to serve '{job.served_model}', "
                "so the job could not be followed; you were not charged.", error_code="provider_unavailable",
                http_status=502, ending=Ending.UPSTREAM_ERROR))
            return
        deployment, target = located
        state = VideoJobState(status=job.status, handle=job.handle)
        single = Deployment(deployment.model, deployment.adapter, [target])
        try:
            current = await router.call(lambda adapter, target: adapter.poll_video(state, target), single)
            if current.status == "completed":
                content = await router.call(lambda adapter, target: adapter.fetch_media(current.video, target), single)
        except errors.ProviderError as error:
            await self.failed_step(job, catalog, error, what="polling")
            return
        if current.status == "completed":
            file = await astore_media(tenant_id=job.tenant_id, request_id=job.request_id, kind=MediaKind.VIDEO,
                                      content=content, content_type=current.video.content_type or "video/mp4")
            usage = current.usage
            if not usage.video_seconds:  # the provider did not say: the seconds asked for
                usage = dataclasses.replace(usage, video_seconds=Decimal(job.params.get("duration_seconds") or 0))
            if not await self.end(job, catalog, Ended(JobStatus.COMPLETED, usage=usage, file=file)):
                await run_blocking(discard_file, file)
        elif current.status in ("failed", "cancelled"):
            await self.end(job, catalog, Ended(
                JobStatus.FAILED if current.status == "failed" else JobStatus.CANCELLED,
                error=f"{job.provider}: {current.error or 'the job was ' + current.status}; you were not charged.",
                error_code="generation_failed" if current.status == "failed" else "cancelled_upstream",
                http_status=502, ending=Ending.UPSTREAM_ERROR))
        else:
            progress = max(job.progress, current.progress or 0)
            await self.update(
                job, status=JobStatus.QUEUED if current.status == "queued" else JobStatus.IN_PROGRESS,
                progress=min(progress, 99),
                handle=current.handle or job.handle, attempts=job.attempts + 1, failures=0, claimed_until=None,
                claimed_by="", next_poll_at=next_poll(job, job.attempts + 1))

    async def failed_step(self, job: VideoJob, catalog: router.Catalog, error: errors.ProviderError, *,
                          what: str) -> None:
        """A retryable failure is tried again after a growing backoff, up to VIDEO_MAX_FAILURES in a
        row (the deadline still holds); any other, or one too many, ends the job, refunded."""
        failures = job.failures + 1
        if error.retryable and failures < settings.VIDEO_MAX_FAILURES:
            log.warning("video job %s: %s failed, will retry (%s: %s)", job.pk, what, type(error).__name__,
                        error.message)
            await self.update(job, failures=failures, claimed_until=None, claimed_by="", error=error.message[:2000],
                              next_poll_at=next_poll(job, job.attempts + failures))
            return
        log.warning("video job %s: %s failed for good (%s: %s)", job.pk, what, type(error).__name__, error.message)
        await self.end(job, catalog, Ended(
            JobStatus.FAILED, error=f"{error.message} You were not charged.", error_code=error.code or error.error_type,
            http_status=error.status, ending=Ending.UPSTREAM_ERROR))

    async def time_out(self, job: VideoJob, catalog: router.Catalog) -> None:
        if job.handle:
            located = locate(job, catalog)
            if located is not None:
                await cancel_upstream(*located, VideoJobState(status=job.status, handle=job.handle))
        await self.end(job, catalog, Ended(
            JobStatus.FAILED, error=f"The video was not ready within {settings.VIDEO_JOB_TIMEOUT_SECONDS}s and was "
            "given up; you were not charged. Try again, or a shorter or lower-resolution video.",
            error_code="timeout", http_status=504, ending=Ending.TIMEOUT))

    async def end(self, job: VideoJob, catalog: router.Catalog, ended: Ended) -> bool:
        prices = await run_blocking(prices_of, job.served_model or job.model, catalog)
        record = await run_blocking(end_job, job, ended, prices)
        if record is None:
            return False
        await publish_settled(record)
        return True


def trace_deployment(chain: router.Chain, model: ModelInfo, target: Target) -> Deployment:
    for deployment in chain.deployments:
        if deployment.model.public_id == model.public_id and target in deployment.targets:
            return deployment
    raise AssertionError("the accepting deployment is in the chain")


async def cancel_upstream(deployment: Deployment, target: Target, state: VideoJobState) -> None:
    """Ask the provider to stop a job; a provider that cannot is only logged (we bill nothing)."""
    try:
        await deployment.adapter.cancel_video(state, target)
    except errors.ProviderError as error:
        log.warning("could not cancel a video job at %s: %s", target.provider, error.message)


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


async def run_worker(stop: asyncio.Event, **options) -> None:
    started = time.monotonic()
    worker = Worker(**options)
    log.info("video worker %s started", worker.name)
    await worker.run(stop)
    log.info("video worker %s stopped after %.0fs", worker.name, time.monotonic() - started)
