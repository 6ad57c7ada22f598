"""One thread that commits the hot path's writes (reservations, settlements) in groups.

Every admitted request writes twice: the spend reservation and its settlement. Done one
request at a time from per-request threads, each write opens a connection and commits on its
own, and under concurrency they queue for the database's write lock. Here a single thread
with one long-lived connection takes whatever jobs are waiting and commits them as one
transaction (group commit): the settlements together, in a few statements whatever their number
(usage/batches.py), every other job in its own savepoint. A request still waits until its own
write is committed: nothing is acknowledged before it is durable.

    await writer.settle(reservation, settlement)   record a request exactly once (its UsageRecord,
                                  or None if already settled); a batch of settlements that fails
                                  is retried one settlement at a time, so one bad settlement
                                  cannot lose the others
    writer.open_row(reservation)  write the open row of a request held against a budget lease,
                                  with the next batch, within OPEN_ROW_SECONDS (nobody waits for
                                  it; usage/budget.py). It does not wake the thread: under load the
                                  request's own settlement, or another's, comes first and the row
                                  is never written; waking it twice per request cost more CPU
                                  than the commit (bench/RESULTS.md)
    writer.post(fn, *args)        run fn(*args) on the writer thread, nobody waiting
    await writer.run(fn, *args)   run fn(*args) on the writer thread; its result or exception

Every RESERVATION_SWEEP_SECONDS, idle or busy, it also runs its housekeeping: renewing this
process's budget leases, settling the reservations whose request is long gone and giving back the
leases of dead processes (usage/recovery.py). start() at process start (the ASGI lifespan, the
worker command) so that runs whether or not any request arrives. It gives back budget leases left
idle for BUDGET_LEASE_IDLE_SECONDS, and at stop() every one.
"""

import asyncio
import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections, transaction

from usage import leases
from usage.batches import settle_all
from usage.leases import book
from usage.metrics import record_commit
from usage.recording import Reservation, Settlement
from usage.recovery import keep_house

log = logging.getLogger(__name__)

MAX_BATCH = 64
# The longest an open row waits for a batch to carry it while the writer is idle.
OPEN_ROW_SECONDS = 0.1
# A job not done by then fails its caller (the database is stuck); a reserve that completes
# later is released by housekeeping, a settle that completes later is simply recorded.
JOB_TIMEOUT_SECONDS = 30.0


class Job:
    __slots__ = ("fn", "args", "loop", "future")

    def __init__(self, fn: Callable | None, args: tuple, loop: asyncio.AbstractEventLoop | None,
                 future: asyncio.Future | None):  # no future: nobody waits
        self.fn = fn
        self.args = args
        self.loop = loop
        self.future = future


class SettleJob(Job):
    """A settlement, args (reservation, settlement): committed with the others of its batch."""

    __slots__ = ()


class OpenJob(Job):
    """The open row of a request held against a lease, args (reservation,): nobody waits."""

    __slots__ = ()


def resolve_all(resolved: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    """On the waiting loop: each (future, result, error) of a batch, unless its caller gave up."""
    for future, result, error in resolved:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def ready_connection() -> None:
    """The writer's connection, ready for a transaction: reconnected when a failed statement found
    the server gone, started afresh when stranded outside autocommit."""
    connection = connections["default"]
    if connection.errors_occurred and connection.connection is not None and not connection.is_usable():
        connection.close()  # the server went away: reconnect
    start_afresh_if_stranded(connection)


def start_afresh_if_stranded(connection) -> None:
    """A transaction whose last step failed after its COMMIT (turning autocommit back on, say, when
    the connection could not be reached just then) leaves Django's autocommit off outside any atomic
    block; the next ``atomic()`` would then never commit, and hold its locks open. Close such a
    connection (the server rolls back whatever is open): the next batch starts on a clean one."""
    if connection.connection is not None and not connection.autocommit and not connection.in_atomic_block:
        log.warning("ledger writer: its connection was left outside autocommit; starting afresh")
        connection.close()


class LedgerWriter:
    def __init__(self, *, housekeeping: Callable[[], Any] | None = None) -> None:
        self.housekeeping = housekeeping
        self._last_housekeeping = 0.0
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._opens: collections.deque[OpenJob] = collections.deque()  # open rows for the next batch
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.connection = None  # the writer thread's connection, for tests that count queries

    def submit(self, fn: Callable, *args) -> asyncio.Future:
        """Queue fn(*args); the returned future resolves on the caller's loop."""
        return self._submit(Job, fn, args)

    def _submit(self, kind: type[Job], fn: Callable | None, args: tuple) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.start()
        self._queue.put(kind(fn, args, loop, future))
        return future

    async def run(self, fn: Callable, *args) -> Any:
        future = self.submit(fn, *args)
        async with asyncio.timeout(JOB_TIMEOUT_SECONDS):
            return await future  # cancelled by the caller or the timeout, the job still runs; its result is dropped

    async def settle(self, reservation: Reservation, settlement: Settlement):
        """Record the request once: its UsageRecord when this call wrote it, None when it was
        settled before. Returns once the commit that holds the record is done. The request's
        lease, if the last in use, is given back in the same commit."""
        if reservation.lease is not None:
            book.finish(reservation.lease, reservation.request_id)
        future = self._submit(SettleJob, None, (reservation, settlement))
        async with asyncio.timeout(JOB_TIMEOUT_SECONDS):
            return await future

    def open_row(self, reservation: Reservation) -> None:
        self.start()
        self._opens.append(OpenJob(None, (reservation,), None, None))

    def post(self, fn: Callable, *args) -> None:
        """Queue fn(*args) with nobody waiting (from any thread); a failure is logged."""
        self.start()
        self._queue.put(Job(fn, args, None, None))

    def start(self) -> None:
        """Start the thread if it is not running (its housekeeping starts with it)."""
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                ready = threading.Event()
                self._thread = threading.Thread(target=self._loop, args=(ready,), name="ledger-writer", daemon=True)
                self._thread.start()
                ready.wait(5)  # its connection is known (self.connection) before anything is queued

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def queue_depth(self) -> int:
        """Jobs waiting (what /readyz bounds: a writer that falls behind makes every request wait)."""
        return self._queue.qsize() + len(self._opens)

    def stop(self) -> None:
        """Finish the queued jobs, give back every budget lease, close the connection, end the
        thread."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            closing = book.to_close(everything=True)
            if closing:
                self._queue.put(Job(leases.close, (closing,), None, None))
            self._queue.put(None)
            thread.join(10)
        self._thread = None

    def _loop(self, ready: threading.Event) -> None:
        self.connection = connections["default"]
        ready.set()
        try:
            while True:
                every = settings.RESERVATION_SWEEP_SECONDS
                due = self._last_housekeeping + every
                idle_due = book.next_idle_deadline() if settings.BUDGET_LEASE_IDLE_SECONDS > 0 else None
                wait = min(due, idle_due or due) - time.monotonic()
                try:
                    first = self._queue.get(timeout=max(0.01, min(wait, OPEN_ROW_SECONDS)))
                except queue.Empty:
                    first = False
                if first is None:
                    self._commit_opens()
                    return
                if time.monotonic() > due:
                    self._keep_house()
                elif idle_due is not None and time.monotonic() > idle_due:
                    self._close_idle_leases()
                batch = [] if first is False else [first]
                while batch and len(batch) < MAX_BATCH:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        self._queue.put(None)  # stop after this batch
                        break
                    batch.append(job)
                # Taken last: each settlement above was queued after its request's open row.
                batch = self._take_opens() + batch
                if not batch:
                    continue
                began = time.monotonic()
                self._commit(batch)
                record_commit(time.monotonic() - began, self._queue.qsize())
        finally:
            connections.close_all()

    def _take_opens(self) -> list[Job]:
        batch = []
        while self._opens:
            batch.append(self._opens.popleft())
        return batch

    def _commit_opens(self) -> None:
        """At stop: the open rows still waiting (their requests are still in flight)."""
        while batch := self._take_opens():
            self._commit(batch)

    def _close_idle_leases(self) -> None:
        ready_connection()
        try:
            with transaction.atomic():
                leases.close(book.to_close())
        except Exception:
            log.exception("ledger writer: giving back idle budget leases failed")

    def _keep_house(self) -> None:
        self._last_housekeeping = time.monotonic()
        if self.housekeeping is None:
            return
        ready_connection()
        try:
            with transaction.atomic():
                self.housekeeping()
        except Exception:
            log.exception("ledger writer: housekeeping failed")

    def _commit(self, batch: list[Job]) -> None:
        ready_connection()
        # Settlements and open rows only (the common batch): together with no savepoint, which
        # would cost two statements (round trips on PostgreSQL) a batch; should that fail, each
        # job is retried in a transaction of its own.
        together = len(batch) > 1 and all(isinstance(job, GROUPED) for job in batch)
        try:
            with transaction.atomic():
                if len(batch) == 1:  # alone, the transaction is the job's own
                    outcomes = {batch[0]: (run_alone(batch[0]), None)}
                elif together:
                    outcomes = settle_together(batch)
                else:
                    outcomes = settle_grouped([job for job in batch if isinstance(job, GROUPED)])
                    for job in batch:
                        if not isinstance(job, GROUPED):
                            outcomes[job] = run_apart(job)
        except Exception as error:  # a lone job failed, or the commit did: nothing of it is durable
            if together:
                outcomes = one_by_one(batch, run_in_transaction)
            else:
                log.exception("ledger writer: a batch of %d failed", len(batch))
                if len(batch) > 1:
                    connections["default"].close()
                outcomes = dict.fromkeys(batch, (None, error))
        # One wake of each waiting event loop for the whole batch, not one per job.
        waiting: dict[asyncio.AbstractEventLoop, list] = {}
        for job in batch:
            if job.future is not None:
                waiting.setdefault(job.loop, []).append((job.future, *outcomes[job]))
        for loop, resolved in waiting.items():
            try:
                loop.call_soon_threadsafe(resolve_all, resolved)
            except RuntimeError:
                pass  # the caller's event loop is closed: nobody is waiting any more


GROUPED = (SettleJob, OpenJob)


def run_alone(job: Job) -> Any:
    if isinstance(job, SettleJob):
        return settle_all([job.args])[0]
    if isinstance(job, OpenJob):
        return settle_all([], [job.args[0]])
    return job.fn(*job.args)


def run_apart(job: Job) -> tuple[Any, BaseException | None]:
    """In an atomic block of its own (a savepoint in the batch's transaction, or after a failed
    batch a transaction): a failing job rolls back alone."""
    try:
        with transaction.atomic():
            return run_alone(job), None
    except Exception as error:
        if job.future is None:
            log.exception("ledger writer: a job nobody waits for failed")
        return None, error


def run_in_transaction(job: Job) -> tuple[Any, BaseException | None]:
    """After its batch failed: the job in a transaction of its own."""
    ready_connection()
    return run_apart(job)


def one_by_one(jobs: list[Job], run: Callable[[Job], tuple[Any, BaseException | None]]) -> dict:
    """Settlements and open rows that failed together, again one at a time, each as ``run`` runs
    it: a request's open row before any settlement (which closes it), so a settlement the
    database refuses fails alone."""
    log.exception("ledger writer: %d settlements failed together; settling them one at a time", len(jobs))
    ordered = [job for job in jobs if isinstance(job, OpenJob)] + [job for job in jobs if not isinstance(job, OpenJob)]
    return {job: run(job) for job in ordered}


def settle_together(jobs: list[Job]) -> dict[Job, tuple[Any, BaseException | None]]:
    """The settlements and open rows in one go (raises if the database refuses any)."""
    settles = [job for job in jobs if isinstance(job, SettleJob)]
    results = settle_all([job.args for job in settles], [job.args[0] for job in jobs if isinstance(job, OpenJob)])
    outcomes = dict.fromkeys(jobs, (None, None))
    outcomes.update((job, (result, None)) for job, result in zip(settles, results, strict=True))
    return outcomes


def settle_grouped(jobs: list[Job]) -> dict[Job, tuple[Any, BaseException | None]]:
    """In a batch with other jobs: the settlements and open rows in one savepoint; if that fails,
    one at a time (each in its savepoint, the open rows first), so a settlement the database
    refuses fails alone."""
    if not jobs:
        return {}
    try:
        with transaction.atomic():
            return settle_together(jobs)
    except Exception:
        return one_by_one(jobs, run_apart)


writer = LedgerWriter(housekeeping=keep_house)
