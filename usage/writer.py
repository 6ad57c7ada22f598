"""One thread that commits the hot path's writes (reservations, settlements) in groups.

Every admitted request writes twice: the spend reservation and its settlement. Done one
request at a time from per-request threads, each write opens a connection and commits on its
own, and under concurrency they queue for the database's write lock. Here a single thread
with one long-lived connection takes whatever jobs are waiting, runs each in its own savepoint
inside one transaction, and commits once (group commit). A request still waits until its own
write is committed: nothing is acknowledged before it is durable.

    await writer.run(fn, *args)   run fn(*args) on the writer thread; its result or exception

Every RESERVATION_SWEEP_SECONDS, idle or busy, it also runs its housekeeping: settling the
reservations whose request is long gone (usage/recovery.py). start() at process start (the ASGI
lifespan, the worker command) so that runs whether or not any request arrives.
"""

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections, transaction

from usage.metrics import record_commit
from usage.recovery import sweep_stale_reservations

log = logging.getLogger(__name__)

MAX_BATCH = 64
# A job not done by then fails its caller (the database is stuck); a reserve that completes
# later is released by housekeeping, a settle that completes later is simply recorded.
JOB_TIMEOUT_SECONDS = 30.0


class Job:
    __slots__ = ("fn", "args", "loop", "future")

    def __init__(self, fn: Callable, args: tuple, loop: asyncio.AbstractEventLoop, future: asyncio.Future):
        self.fn = fn
        self.args = args
        self.loop = loop
        self.future = future


def resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


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
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.connection = None  # the writer thread's connection, for tests that count queries

    def submit(self, fn: Callable, *args) -> asyncio.Future:
        """Queue fn(*args); the returned future resolves on the caller's loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.start()
        self._queue.put(Job(fn, args, loop, future))
        return future

    async def run(self, fn: Callable, *args) -> Any:
        return await asyncio.wait_for(asyncio.shield(self.submit(fn, *args)), JOB_TIMEOUT_SECONDS)

    def start(self) -> None:
        """Start the thread if it is not running (its housekeeping starts with it)."""
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="ledger-writer", daemon=True)
                self._thread.start()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def queue_depth(self) -> int:
        """Jobs waiting (what /readyz bounds: a writer that falls behind makes every request wait)."""
        return self._queue.qsize()

    def stop(self) -> None:
        """Finish the queued jobs, close the connection, end the thread."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(10)
        self._thread = None

    def _loop(self) -> None:
        self.connection = connections["default"]
        try:
            while True:
                every = settings.RESERVATION_SWEEP_SECONDS
                try:
                    first = self._queue.get(timeout=max(0.01, self._last_housekeeping + every - time.monotonic()))
                except queue.Empty:
                    self._keep_house()
                    continue
                if first is None:
                    return
                if time.monotonic() - self._last_housekeeping > every:
                    self._keep_house()
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        self._queue.put(None)  # stop after this batch
                        break
                    batch.append(job)
                began = time.monotonic()
                self._commit(batch)
                record_commit(time.monotonic() - began, self._queue.qsize())
        finally:
            connections.close_all()

    def _keep_house(self) -> None:
        self._last_housekeeping = time.monotonic()
        if self.housekeeping is None:
            return
        start_afresh_if_stranded(connections["default"])
        try:
            with transaction.atomic():
                self.housekeeping()
        except Exception:
            log.exception("ledger writer: housekeeping failed")

    def _commit(self, batch: list[Job]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        connection = connections["default"]
        if connection.errors_occurred and connection.connection is not None and not connection.is_usable():
            connection.close()  # the server went away: reconnect for this batch
        start_afresh_if_stranded(connection)
        try:
            with transaction.atomic():
                if len(batch) == 1:  # alone, the transaction is the job's own
                    job = batch[0]
                    outcomes.append((job.fn(*job.args), None))
                else:
                    for job in batch:
                        try:
                            with transaction.atomic():  # a failing job rolls back alone
                                outcomes.append((job.fn(*job.args), None))
                        except Exception as error:
                            outcomes.append((None, error))
        except Exception as error:  # a lone job failed, or the commit did: nothing of it is durable
            log.exception("ledger writer: a batch of %d failed", len(batch))
            if len(batch) > 1:
                connections["default"].close()
            outcomes = [(None, error)] * len(batch)
        for job, (result, error) in zip(batch, outcomes, strict=True):
            try:
                job.loop.call_soon_threadsafe(resolve, job.future, result, error)
            except RuntimeError:
                pass  # the caller's event loop is closed: nobody is waiting any more


writer = LedgerWriter(housekeeping=sweep_stale_reservations)
