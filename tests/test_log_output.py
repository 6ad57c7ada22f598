"""The console log handler: lines logged on the event loop's thread leave in one write per turn
of the loop, in the order they were logged; nothing waiting is lost at flush or close."""

import asyncio
import io
import logging
import threading

from gateway.log_output import MAX_PENDING, Formatter, StreamHandler


class Stream(io.StringIO):
    """A stream that counts the writes made to it."""

    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def logger_to(stream: Stream, name: str) -> tuple[logging.Logger, StreamHandler]:
    handler = StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger(f"tests.log_output.{name}")
    log.handlers, log.propagate = [handler], False
    log.setLevel(logging.INFO)
    return log, handler


def test_lines_logged_in_one_turn_of_the_loop_leave_in_one_write_when_it_ends():
    stream = Stream()
    log, _ = logger_to(stream, "turn")

    async def run():
        for number in range(3):
            log.info("request %d done", number)
        during = stream.getvalue()
        await asyncio.sleep(0)  # the turn ends
        return during

    assert asyncio.run(run()) == ""
    assert stream.getvalue() == "INFO request 0 done\nINFO request 1 done\nINFO request 2 done\n"
    assert stream.writes == 1


def test_a_line_logged_with_no_loop_running_is_written_at_once():
    stream = Stream()
    log, _ = logger_to(stream, "no_loop")
    log.warning("the writer stopped")
    assert stream.getvalue() == "WARNING the writer stopped\n"


def test_a_line_from_another_thread_is_written_after_the_lines_waiting_before_it():
    stream = Stream()
    log, _ = logger_to(stream, "threads")

    async def run():
        log.info("from the loop")
        other = threading.Thread(target=log.warning, args=("from the writer's thread",))
        other.start()
        other.join()
        return stream.getvalue()

    written = asyncio.run(run())
    assert written == "INFO from the loop\nWARNING from the writer's thread\n"
    assert stream.getvalue() == written  # the turn's own flush found nothing left


def test_close_writes_what_is_waiting_and_so_does_a_full_buffer():
    stream = Stream()
    log, handler = logger_to(stream, "close")

    async def run():
        for number in range(MAX_PENDING):
            log.info("line %d", number)
        full = stream.writes
        log.info("the last")
        handler.close()  # before the turn ends: as logging.shutdown at exit
        return full

    assert asyncio.run(run()) == 1
    lines = stream.getvalue().splitlines()
    assert len(lines) == MAX_PENDING + 1 and lines[-1] == "INFO the last"
    assert stream.writes == 2


def test_lines_of_a_loop_are_written_even_when_a_flush_was_left_scheduled_on_a_loop_now_closed():
    stream = Stream()
    log, _ = logger_to(stream, "two_loops")
    closed = asyncio.new_event_loop()

    async def log_once():
        asyncio.get_running_loop().stop()  # this turn is its last
        log.info("on a loop that closes before its turn ends")

    closed.run_until_complete(log_once())
    assert stream.getvalue() == ""  # its flush was scheduled, and will never run
    closed.close()

    async def run():
        log.info("on the next loop")
        await asyncio.sleep(0)

    asyncio.run(run())
    assert stream.getvalue() == "INFO on a loop that closes before its turn ends\nINFO on the next loop\n"


def test_the_time_of_each_line_reads_as_loggings_own_across_seconds():
    """The console formatter formats each second once; every line's time still reads as logging's."""
    ours, logging_own = Formatter("%(asctime)s %(message)s"), logging.Formatter("%(asctime)s %(message)s")
    for created in (1_765_000_000.0, 1_765_000_000.25, 1_765_000_000.999, 1_765_000_001.004, 1_765_000_000.5,
                    1_765_003_600.123):
        record = logging.makeLogRecord({"msg": "served", "created": created, "msecs": (created % 1) * 1000})
        assert ours.format(record) == logging_own.format(record)
    dated = Formatter("%(asctime)s %(message)s", datefmt="%H:%M")
    record = logging.makeLogRecord({"msg": "served", "created": 1_765_000_000.0})
    assert dated.format(record) == logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M").format(record)
