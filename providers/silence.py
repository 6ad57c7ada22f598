"""How long a provider may keep a read waiting: one timer per attempt, not one per read.

    limit = SilenceLimit()
    limit.start(until)              before a read (in the task that reads): it may last until
                                    ``until`` (time.monotonic())
    try:
        item = await read
    except asyncio.CancelledError:
        if limit.expired():         the limit cancelled the read: it timed out
            ...
        raise                       a cancellation of the task's own (the client left)
    finally:
        limit.stop()
    limit.close()                   once the attempt is over

``asyncio.timeout`` around each read that has to wait arms a timer and cancels it again: a handle
in the loop's heap, under uvloop a libuv timer started and closed, about 6 µs a read, up to once
an event in a stream. Here a read only moves the deadline the timer checks. The timer stays armed
from read to read; when it fires before the deadline it re-arms for the rest, and when it fires
between two reads it lapses until the next read arms it. It never fires later than a read's
deadline: a read whose deadline is earlier than the armed timer re-arms it.

A read the limit ends is cancelled as ``asyncio.timeout`` cancels it, and ``expired()`` takes the
cancellation back the same way: only when no other cancellation of the task came since the read
began (a client that left at the same moment stays a client that left).
"""

import asyncio
import math
import time


class SilenceLimit:
    __slots__ = ("loop", "task", "cancelling", "until", "reading", "fired", "timer", "timer_at")

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task | None = None
        self.cancelling = 0  # the task's pending cancellations when the read began
        self.until = math.inf
        self.reading = False
        self.fired = False
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf

    def start(self, until: float) -> None:
        """A read begins in the current task; it may last until ``until``."""
        self.task = asyncio.current_task()
        self.cancelling = self.task.cancelling()
        self.until = until
        self.reading = True
        self.fired = False
        if until < self.timer_at:
            self.arm(until)

    def stop(self) -> None:
        """The read is over (answered, failed or cancelled)."""
        self.reading = False

    def expired(self) -> bool:
        """After a CancelledError out of the read: whether it was this limit's, taken back."""
        if not self.fired:
            return False
        self.fired = False
        return self.task.uncancel() <= self.cancelling

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.timer_at = None, math.inf

    def arm(self, at: float) -> None:
        self.close()
        if at < math.inf:
            self.timer_at = at
            self.timer = self.loop.call_later(max(0.0, at - time.monotonic()), self.check)

    def check(self) -> None:
        """The timer: cancel a read past its deadline, wait on for one before it, lapse between reads."""
        self.timer, self.timer_at = None, math.inf
        if not self.reading:
            return
        if time.monotonic() < self.until:
            self.arm(self.until)
            return
        self.fired = True
        self.task.cancel()
