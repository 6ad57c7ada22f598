"""The video worker, the loop of ``manage.py run_worker`` (and of run_background): it claims due
jobs (media.jobs), advances each one step (submit along its chain, or poll), renews its leases,
and at a stop hands back what it holds.

Submission walks the job's chain (the model, then its fallbacks or the client's): a provider
that does not accept the job hands it to the next (providers.router.call_chain). A retryable
failure of the whole chain, or of a poll, is tried again later with backoff, until the deadline.
"""

import asyncio
import dataclasses
import functools
import logging
import os
import secrets
import socket
import time
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from media.files import astore_media
from media.jobs import (
    Ended,
    chain_of,
    claim_due_jobs,
    discard_file,
    end_job,
    key_fingerprint,
    locate,
    next_poll,
    prices_of,
    release_leases,
    renew_leases,
    update_held_job,
    video_request_of,
)
from media.models import JobStatus, MediaKind, VideoJob
from providers import errors, router
from providers.blocking import run_blocking
from providers.http import close_client
from providers.media_types import VideoJobState
from providers.router import Deployment, ModelInfo
from providers.types import Target
from usage.live import publish_settled
from usage.models import Ending

log = logging.getLogger(__name__)


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



async def run_worker(stop: asyncio.Event, **options) -> None:
    started = time.monotonic()
    worker = Worker(**options)
    log.info("video worker %s started", worker.name)
    await worker.run(stop)
    log.info("video worker %s stopped after %.0fs", worker.name, time.monotonic() - started)
