"""`manage.py run_background`: all the work that is not answering a request, in one process type.

    the video worker             media.worker: claims due video jobs (a lease per job) and drives them
    the reservation sweep        usage.recovery, on the ledger writer's own schedule
                                 (RESERVATION_SWEEP_SECONDS; every process runs it, settle() is
                                 idempotent, so copies are harmless)
    periodic jobs                PERIODIC_JOBS, each once per period across the fleet: a process
                                 that finds one due takes its lease (gateway/leases.py) and runs it
                                 (among them the credits' debits and auto top-ups, and the sweep
                                 of budget holds: billing/credit_debits.py, billing/spend_holds.py)

Any number of copies may run at once, on any number of machines.
"""

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from billing import credit_debits, credit_grants, spend_holds, stripe_api
from billing.alert_delivery import send_alerts
from billing.overage import report_overage
from billing.subscriptions import expire_grace_periods
from conversations.store import purge_expired_responses
from gateway.leases import release_lease, take_lease
from media.worker import run_worker, worker_name
from providers.blocking import run_blocking
from providers.health import chat_deployments, probe
from usage.writer import writer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    setting: str  # the setting that holds its period in seconds (0: never)
    run: Callable[[], Awaitable[str]]  # does the work; says what it did, for the log line
    hold: float = 1800.0  # its lease: after this, a run whose process died is another's to make

    def every(self) -> float:
        return getattr(settings, self.setting)


async def end_grace_periods() -> str:
    return f"{len(await run_blocking(expire_grace_periods))} grace period(s) ended"


async def send_overage() -> str:
    if not stripe_api.is_configured():
        return "billing is not configured"
    run = await run_blocking(report_overage)
    for report, why in run.failed:
        log.warning("overage %s not sent (kept for the next run): %s", report.identifier, why)
    return f"{len(run.sent)} overage report(s) sent, {len(run.failed)} failed"


async def purge_responses() -> str:
    return f"{await run_blocking(purge_expired_responses)} expired stored response(s) deleted"


async def check_providers() -> str:
    """One tiny request per chat deployment: its answer (or error) feeds the circuit breakers,
    shared through Redis when REDIS_URL is set, and a deployment that is down is logged."""
    results = await asyncio.gather(*(probe(deployment) for deployment in await run_blocking(chat_deployments)))
    down = [result for result in results if not result.ok]
    for result in down:
        log.warning("provider check: %s", result.line().strip())
    return f"{len(results) - len(down)} of {len(results)} chat deployments answered"


async def debit_credits() -> str:
    """Settled usage into the credit ledger, then top-ups for what ran low (outside transactions)."""
    entries = await run_blocking(credit_debits.debit_settled_usage)
    topped = await run_blocking(credit_debits.top_up_low_accounts)
    return f"{len(entries)} usage debit(s), {len(topped)} auto top-up(s)"


async def top_up_credits() -> str:
    return f"{len(await run_blocking(credit_debits.top_up_low_accounts))} auto top-up(s)"


async def grant_credits() -> str:
    return f"{len(await run_blocking(credit_grants.grant_monthly_credits))} monthly credit grant(s)"


async def sweep_spend_holds() -> str:
    recorded, abandoned = await run_blocking(spend_holds.sweep_holds)
    return f"{recorded} budget hold(s) settled from records, {abandoned} abandoned one(s) given back"


PERIODIC_JOBS = (
    PeriodicJob("expire_grace_periods", "GRACE_PERIOD_CHECK_SECONDS", end_grace_periods),
    PeriodicJob("report_overage", "OVERAGE_REPORT_SECONDS", send_overage),
    PeriodicJob("purge_responses", "RESPONSE_PURGE_SECONDS", purge_responses),
    PeriodicJob("check_providers", "PROVIDER_CHECK_SECONDS", check_providers, hold=300.0),
    PeriodicJob("send_alerts", "ALERT_CHECK_SECONDS", send_alerts, hold=300.0),
    PeriodicJob("debit_credits", "CREDIT_DEBIT_SECONDS", debit_credits, hold=600.0),
    PeriodicJob("top_up_credits", "CREDIT_TOP_UP_SECONDS", top_up_credits, hold=300.0),
    PeriodicJob("grant_credits", "CREDIT_GRANT_SECONDS", grant_credits, hold=300.0),
    PeriodicJob("sweep_spend_holds", "RESERVATION_SWEEP_SECONDS", sweep_spend_holds, hold=300.0),
)


async def run_due(jobs: tuple[PeriodicJob, ...], *, holder: str,
                  clock: Callable[[], datetime] = timezone.now) -> list[str]:
    """Run each job that is due and whose lease ``holder`` takes; the names of those it ran."""
    ran = []
    for job in jobs:
        every = job.every()
        if every <= 0:
            continue
        taken = functools.partial(take_lease, job.name, holder, every=every, hold=job.hold, now=clock())
        if not await run_blocking(taken):
            continue
        began = time.monotonic()
        try:
            summary = await job.run()
            log.info("periodic job %s ran in %.1fs: %s", job.name, time.monotonic() - began, summary)
        except Exception:
            log.exception("periodic job %s failed; it runs again next period", job.name)
        finally:
            await run_blocking(functools.partial(release_lease, job.name, holder, now=clock()))
        ran.append(job.name)
    return ran


async def keep_schedule(stop: asyncio.Event, *, holder: str, jobs: tuple[PeriodicJob, ...] = PERIODIC_JOBS) -> None:
    """Every BACKGROUND_TICK_SECONDS until ``stop``, run what is due (a job running when ``stop``
    comes is finished)."""
    while not stop.is_set():
        try:
            await run_due(jobs, holder=holder)
        except Exception:
            log.exception("periodic jobs: could not look for due jobs; trying again")
        try:
            await asyncio.wait_for(stop.wait(), settings.BACKGROUND_TICK_SECONDS)
        except TimeoutError:
            pass


async def run_background(stop: asyncio.Event, *, concurrency: int | None = None) -> None:
    writer.start()  # the reservation sweep runs here too, traffic or not
    holder = worker_name()
    log.info("background process %s started: video worker and periodic jobs (%s)", holder,
             ", ".join(f"{job.name} every {job.every():g}s" for job in PERIODIC_JOBS if job.every() > 0))
    await asyncio.gather(run_worker(stop, name=holder, concurrency=concurrency), keep_schedule(stop, holder=holder))
