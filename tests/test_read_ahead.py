"""The hot path's snapshots of rows (API keys, tenants' spend budgets): one read for the requests
that miss together, read again before expiry while in use, never older than a forget."""

import asyncio
import threading
import time

import pytest

from providers.read_ahead import ReadAhead

LIFE = 10.0


class Rows:
    """A loader on the executor: counts its reads, returns the row as it stands, and can be held
    at a gate (a read under way) while the test looks at what requests see."""

    def __init__(self, **rows):
        self.rows = rows
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def load(self, key):
        self.reads += 1
        assert self.gate.wait(10), "the test never opened the gate"
        if self.fail:
            self.fail = False
            raise ConnectionError("the database went away")
        return self.rows.get(key)


def snapshots_of(rows: Rows, now: list[float], **options) -> ReadAhead:
    return ReadAhead("row", rows.load, seconds=lambda: LIFE, clock=lambda: now[0], **options)


async def until(condition, *, within: float = 15.0) -> None:
    """Let the event loop run (the executor's thread too) until ``condition`` holds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"the condition did not hold within {within:g}s")
        await asyncio.sleep(0)


def test_requests_that_miss_together_share_one_read():
    rows, now = Rows(a="alpha"), [0.0]
    snapshots = snapshots_of(rows, now)

    async def run():
        rows.gate.clear()
        waiting = [asyncio.ensure_future(snapshots.get("a")) for _ in range(10)]
        await until(lambda: rows.reads == 1)
        await asyncio.sleep(0)
        rows.gate.set()
        return await asyncio.gather(*waiting)

    assert asyncio.run(run()) == ["alpha"] * 10
    assert rows.reads == 1


def test_an_entry_in_use_near_expiry_is_read_again_without_making_a_request_wait():
    rows, now = Rows(a="alpha"), [0.0]
    snapshots = snapshots_of(rows, now)

    async def run():
        seen = [await snapshots.get("a")]
        now[0] = 5.0  # halfway: from memory, no read
        seen.append(await snapshots.get("a"))
        reads_halfway = rows.reads
        rows.rows["a"] = "alpha 2"
        rows.gate.clear()  # the read ahead is held: a request waiting for it would never return
        now[0] = 8.0  # in the entry's last quarter
        seen.append(await snapshots.get("a"))
        await until(lambda: rows.reads == 2)
        rows.gate.set()
        await until(lambda: not snapshots.reads)
        now[0] = 11.0  # past the first read's expiry, within the second's
        seen.append(await snapshots.get("a"))
        return seen, reads_halfway

    seen, reads_halfway = asyncio.run(run())
    assert seen == ["alpha", "alpha", "alpha", "alpha 2"]
    assert reads_halfway == 1 and rows.reads == 2


def test_an_expired_entry_is_read_before_the_request_goes_on():
    rows, now = Rows(a="alpha"), [0.0]
    snapshots = snapshots_of(rows, now)

    async def run():
        first = await snapshots.get("a")
        rows.rows["a"] = "alpha 2"
        now[0] = LIFE + 1
        return first, await snapshots.get("a")

    assert asyncio.run(run()) == ("alpha", "alpha 2")
    assert rows.reads == 2


def test_what_is_kept_is_never_older_than_a_forget_during_its_read():
    rows, now = Rows(a="alpha"), [0.0]
    snapshots = snapshots_of(rows, now)

    async def run():
        rows.gate.clear()
        waiting = asyncio.ensure_future(snapshots.get("a"))
        await until(lambda: rows.reads == 1)
        rows.rows["a"] = "revoked"  # the row changes and is forgotten while the read is under way
        snapshots.forget("a")
        rows.gate.set()
        return await waiting, await snapshots.get("a")

    assert asyncio.run(run()) == ("revoked", "revoked")
    assert rows.reads == 2  # read again after the forget, then served from memory


def test_forget_all_makes_every_key_read_anew():
    rows, now = Rows(a="alpha", b="beta"), [0.0]
    snapshots = snapshots_of(rows, now)

    async def run():
        await snapshots.get("a"), await snapshots.get("b")
        rows.rows.update(a="alpha 2", b="beta 2")
        snapshots.forget_all()
        return await snapshots.get("a"), await snapshots.get("b")

    assert asyncio.run(run()) == ("alpha 2", "beta 2")
    assert rows.reads == 4


def test_a_failed_read_reaches_its_requests_and_the_next_request_reads_again():
    rows, now = Rows(a="alpha"), [0.0]
    snapshots = snapshots_of(rows, now)
    rows.fail = True

    async def run():
        with pytest.raises(ConnectionError):
            await snapshots.get("a")
        return await snapshots.get("a")

    assert asyncio.run(run()) == "alpha"
    assert rows.reads == 2


def test_a_missing_row_is_remembered_like_any_other():
    rows, now = Rows(), [0.0]
    snapshots = snapshots_of(rows, now)

    async def run():
        return [await snapshots.get("made-up") for _ in range(3)]

    assert asyncio.run(run()) == [None, None, None]
    assert rows.reads == 1


def test_at_most_max_entries_are_kept_the_least_recently_used_dropped_first():
    rows, now = Rows(a="alpha", b="beta", c="gamma"), [0.0]
    snapshots = snapshots_of(rows, now, max_entries=2)

    async def run():
        for key in ("a", "b", "a", "c"):  # c pushes out b, used less recently than a
            await snapshots.get(key)
        reads = rows.reads
        await snapshots.get("a")
        after_a = rows.reads
        await snapshots.get("b")
        return reads, after_a, rows.reads

    assert asyncio.run(run()) == (3, 3, 4)
