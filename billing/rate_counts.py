"""The counts behind the rate limits (billing.rate_limits), each by name (``tokens:<key>``):

    window  what a key used in one fixed period (its requests, its tokens this minute)
    gauge   what a key has in use now (its requests in flight)

    await take(name, window, need, limit)   add ``need`` to the window if it stays within ``limit``
    add(name, window, amount)               correct a window whatever the limit (tokens used beyond
                                            what was taken, or given back); only the window's own
                                            period, or a later one for an excess
    await acquire(name, limit)              one more in use, if it stays within ``limit``
    release(name)                           one fewer

Each answers a Taken, which names the counts it was taken from: add and release go there (a node
whose Redis is down counts alone meanwhile). Two kinds:

    LocalCounts    this process's memory: exact for one process, the default (no REDIS_URL)
    SlicedCounts   Redis, shared by every node, taken in slices (billing.rate_slices)

add and release are synchronous and never fail: settlement calls them.
"""

import math
import threading
import zlib
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Window:
    """One period of a name's windows, in wall-clock seconds (the same on every node)."""

    start: int
    ends: int


def window_of(name: str, period: int, now: float) -> Window:
    """The period holding ``now``. Periods are staggered by name, so that keys do not all start
    afresh in the same second (as django-ratelimit staggers its windows)."""
    offset = zlib.crc32(name.encode()) % period
    start = math.floor((now - offset) / period) * period + offset
    return Window(start, start + period)


@dataclass(frozen=True, slots=True)
class Taken:
    ok: bool
    used: int  # the window's count (a gauge's: in use) once taken, as this process knows it
    counts: "Counts"  # where it was taken: add and release go there


class Counts(Protocol):
    async def take(self, name: str, window: Window, need: int, limit: int) -> Taken: ...

    def add(self, name: str, window: Window, amount: int) -> None: ...

    async def acquire(self, name: str, limit: int) -> Taken: ...

    def release(self, name: str) -> None: ...


class LocalCounts:
    """Counts in this process's memory: one window (the latest) per name, one gauge per name in
    use. The test suite's threads share them with the gateway's, hence the lock."""

    def __init__(self):
        self.windows: dict[str, tuple[int, int]] = {}  # name -> (window start, used)
        self.gauges: dict[str, int] = {}  # name -> in use (absent: none)
        self.lock = threading.Lock()

    async def take(self, name: str, window: Window, need: int, limit: int) -> Taken:
        with self.lock:
            start, used = self.windows.get(name, (window.start, 0))
            if start != window.start:
                used = 0
            ok = used + need <= limit
            if ok:
                used += need
            self.windows[name] = (window.start, used)
        return Taken(ok, used, self)

    def add(self, name: str, window: Window, amount: int) -> None:
        with self.lock:
            start, used = self.windows.get(name, (window.start, 0))
            if start == window.start:
                self.windows[name] = (start, max(0, used + amount))
            elif start < window.start and amount > 0:
                self.windows[name] = (window.start, amount)

    async def acquire(self, name: str, limit: int) -> Taken:
        with self.lock:
            in_use = self.gauges.get(name, 0)
            ok = in_use < limit
            if ok:
                in_use = self.gauges[name] = in_use + 1
        return Taken(ok, in_use, self)

    def release(self, name: str) -> None:
        with self.lock:
            in_use = self.gauges.pop(name, 0) - 1
            if in_use > 0:
                self.gauges[name] = in_use

    def in_use(self, name: str) -> int:
        return self.gauges.get(name, 0)

    def clear(self) -> None:
        with self.lock:
            self.windows.clear()
            self.gauges.clear()
