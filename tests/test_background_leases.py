"""run_background's periodic jobs run once per period across every copy: the copy that takes a
job's lease runs it, the others pass, and after the period one copy runs it again. A clock is
injected: no sleeping."""

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

from gateway.background import PeriodicJob, run_due
from gateway.leases import take_lease
from gateway.models import Lease

COPIES = 4
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def counted(settings):
    """A periodic job every 60s that counts its runs (run_background's jobs read their period the same way)."""
    settings.TEST_JOB_SECONDS = 60.0
    runs: list[str] = []

    async def count() -> str:
        runs.append("ran")
        return "counted"
    return PeriodicJob("counted", "TEST_JOB_SECONDS", count), runs


def run_copies(job: PeriodicJob, clock: Clock) -> list[list[str]]:
    """Every copy looks for due jobs at the same instant, each in a thread with its own loop and
    database connections, as separate processes would."""
    start = threading.Barrier(COPIES)
    ran: list[list[str]] = [[] for _ in range(COPIES)]

    def copy(index: int) -> None:
        start.wait(10)
        ran[index] = asyncio.run(run_due((job,), holder=f"copy-{index}", clock=clock))
    threads = [threading.Thread(target=copy, args=(index,)) for index in range(COPIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return ran


def test_copies_run_a_job_once_per_period(transactional_db, counted):
    job, runs = counted
    clock = Clock()
    ran = run_copies(job, clock)
    assert runs == ["ran"] and sorted(ran, key=len) == [[], [], [], ["counted"]]
    lease = Lease.objects.get(name="counted")
    assert lease.last_run_at == START and lease.expires_at == START  # released once done

    clock.now = START + timedelta(seconds=59)  # within the period: nobody runs it
    assert run_copies(job, clock) == [[]] * COPIES and runs == ["ran"]

    clock.now = START + timedelta(seconds=60)  # the next period: once more, by one copy
    ran = run_copies(job, clock)
    assert runs == ["ran", "ran"] and sum(len(names) for names in ran) == 1


def test_a_held_lease_is_not_taken_until_it_expires(transactional_db):
    assert take_lease("long", "first", every=60, hold=600, now=START)
    later = START + timedelta(seconds=120)  # due again, but the first run still holds it
    assert not take_lease("long", "second", every=60, hold=600, now=later)
    assert take_lease("long", "second", every=60, hold=600, now=START + timedelta(seconds=600))  # its holder died
    assert Lease.objects.get(name="long").holder == "second"


def test_a_failing_job_is_released_and_waits_for_its_next_period(transactional_db, settings):
    settings.TEST_JOB_SECONDS = 60.0
    attempts: list[int] = []

    async def fail() -> str:
        attempts.append(1)
        raise RuntimeError("the job failed")
    job, clock = PeriodicJob("failing", "TEST_JOB_SECONDS", fail), Clock()
    assert asyncio.run(run_due((job,), holder="a", clock=clock)) == ["failing"]
    assert asyncio.run(run_due((job,), holder="b", clock=clock)) == []
    clock.now += timedelta(seconds=60)
    assert asyncio.run(run_due((job,), holder="b", clock=clock)) == ["failing"] and len(attempts) == 2


def test_a_job_with_no_period_never_runs(transactional_db, counted, settings):
    job, runs = counted
    settings.TEST_JOB_SECONDS = 0
    assert asyncio.run(run_due((job,), holder="a", clock=Clock())) == [] and runs == []
