"""The console log handler (settings.LOGGING): logging's StreamHandler, with the lines written on
an event loop's thread joined into one write per turn of the loop.

A write to the stream is a system call, and CPython lets go of the GIL for it. On the event
loop's thread that is costly: the ledger writer's thread takes the GIL, and the loop waits until
it gives it back, up to the interpreter's switch interval (5 ms). Every /v1 request logs a line
(gateway/v1/request_log.py), and requests settled by one commit finish in the same turn, so their
lines now leave together.

A line logged on the loop's thread is formatted at once and written when the loop's current turn
ends (``loop.call_soon``), or at once when MAX_PENDING are waiting. A line logged on any other
thread, or with no loop running, is written at once, after any lines still waiting, so lines
keep the order they were logged in. A flush left scheduled on a loop that closed before its turn
ended does not hold back the lines of another loop (each schedules its own); ``flush()`` and
``close()`` (logging.shutdown, at exit) write what is waiting.
"""

import asyncio
import logging
import time

MAX_PENDING = 256


class Formatter(logging.Formatter):
    """logging's, with the time of day formatted once a second, not once a line (the default date
    format's finest field is the second; the milliseconds are added per line, as logging adds them)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.second: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None or self.default_msec_format is None:
            return super().formatTime(record, datefmt)
        whole = int(record.created)
        second, text = self.second
        if second != whole:
            text = time.strftime(self.default_time_format, self.converter(whole))
            self.second = (whole, text)
        return self.default_msec_format % (text, record.msecs)


class StreamHandler(logging.StreamHandler):
    def __init__(self, stream=None):
        super().__init__(stream)
        self.pending: list[str] = []
        self.flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on

    def emit(self, record: logging.LogRecord) -> None:
        """Called by ``handle`` under the handler's lock."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self.pending.append(line)
        if loop is None or len(self.pending) >= MAX_PENDING:
            self.flush()
        elif self.flush_on is not loop:  # (one scheduled on another loop, which may have closed, is not enough)
            self.flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:
            self.flush_on = None
            if not self.pending:
                return super().flush()
            text, self.pending = "".join(self.pending), []
            try:
                self.stream.write(text)
                super().flush()
            except Exception:  # as logging's own handlers do: a broken stream must not break the caller
                self.handleError(logging.makeLogRecord({"msg": text.rstrip("\n")}))

    def close(self) -> None:
        self.flush()
        super().close()
