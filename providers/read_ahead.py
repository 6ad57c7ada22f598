"""Rows the hot path needs, kept in process memory and read again before they go stale.

    snapshots = ReadAhead("API key", load, seconds=lambda: settings.KEY_CACHE_SECONDS)
    await snapshots.get(key)     the value from memory; on a miss, one blocking ``load(key)`` on the
                                 shared executor (providers.blocking) that every request missing
                                 at the same moment waits for
    snapshots.forget(key) / snapshots.forget_all()   the next request reads anew

An entry is kept ``seconds()``. One in use within the last quarter of that is read again in the
background while requests go on with it, so a key, tenant or budget in steady use never makes a
request wait for the database. A forget while a read is under way means that read is done again:
what is kept is never older than the forget (a revoked key, a changed budget). A read that fails
reaches the requests waiting for it; nothing is kept, and the next request tries again. At most
``max_entries`` are kept, the least recently used dropped first, so keys made up by a client
cannot grow it; a value of None (no such row) is kept like any other, so a flood of made-up keys
costs no query each.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from providers.blocking import run_blocking

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

AHEAD = 0.25  # of the entry's life: an entry in use this close to expiry is read again in the background
RETRIES_AFTER_FORGET = 3


class ReadAhead(Generic[K, V]):
    def __init__(self, what: str, load: Callable[[K], V], *, seconds: Callable[[], float],
                 max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.load = load
        self.seconds = seconds
        self.max_entries = max_entries
        self.clock = clock
        self.entries: OrderedDict[K, tuple[float, V]] = OrderedDict()  # key -> (expiry, value)
        self.reads: dict[K, asyncio.Task] = {}  # key -> its read under way
        self.forgotten = 0  # counts forgets: a read begun before one is not kept

    async def get(self, key: K) -> V:
        now = self.clock()
        entry = self.entries.get(key)
        if entry is not None and entry[0] > now:
            self.entries.move_to_end(key)
            if entry[0] - now < self.seconds() * AHEAD:
                self.reading(key)
            return entry[1]
        return await asyncio.shield(self.reading(key))  # one request leaving must not cancel the others' read

    def forget(self, key: K) -> None:
        self.forgotten += 1
        self.entries.pop(key, None)

    def forget_all(self) -> None:
        self.forgotten += 1
        self.entries.clear()

    def reading(self, key: K) -> asyncio.Task:
        """The read of ``key`` under way on this event loop (tests run several), or a new one."""
        task = self.reads.get(key)
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self.reads[key] = asyncio.ensure_future(self.read(key))
            task.add_done_callback(lambda done: self.read_done(key, done))
        return task

    async def read(self, key: K) -> V:
        for _ in range(RETRIES_AFTER_FORGET):
            began, forgotten = self.clock(), self.forgotten
            value = await run_blocking(self.load, key)
            if forgotten == self.forgotten:
                self.keep(key, value, began + self.seconds())
                break
        return value

    def keep(self, key: K, value: V, expires: float) -> None:
        self.entries[key] = (expires, value)
        self.entries.move_to_end(key)
        if len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def read_done(self, key: K, task: asyncio.Task) -> None:
        if self.reads.get(key) is task:
            del self.reads[key]
        if not task.cancelled() and task.exception() is not None:
            # The requests waiting for it get the error; a read ahead of expiry is tried again later.
            log.warning("reading the %s %s failed: %s", self.what, key, task.exception())
