"""Rate counts in Redis taken in slices (billing.rate_slices): two nodes (two SlicedCounts on one
Redis) never pass a limit together and use all of it, most requests make no Redis round trip, an
idle node hands its spare back, and a crashed node's places in flight come back after its lease."""

import asyncio
import subprocess
from contextlib import asynccontextmanager

import pytest

from billing import rate_slices
from billing.rate_counts import LocalCounts, window_of
from billing.rate_slices import SlicedCounts
from tests.redis_server import free_port

NAME = "requests:7"
NOW = 1_800_000_000.0


class Clock:
    """A node's monotonic clock, moved by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis(redis_url):
    subprocess.run(["redis-cli", "-u", redis_url, "FLUSHALL"], check=True, capture_output=True)
    return redis_url


@asynccontextmanager
async def running(*nodes: SlicedCounts):
    """The nodes, closed at the end (what they hold stays in Redis, as a crashed node's would)."""
    try:
        yield nodes
    finally:
        await asyncio.gather(*(node.close() for node in nodes))


def in_redis(url: str, *command: str) -> str:
    return subprocess.run(["redis-cli", "-u", url, *command], check=True, capture_output=True, text=True).stdout.strip()


def counting(node: SlicedCounts, script: str) -> list[int]:
    """Count the node's calls of one of its Redis scripts."""
    calls = []
    original = node.scripts[script]

    def call(**arguments):
        calls.append(1)
        return original(**arguments)

    node.scripts[script] = call
    return calls


def test_two_nodes_together_take_exactly_the_limit(redis):
    async def run():
        async with running(SlicedCounts(redis, node="a"), SlicedCounts(redis, node="b")) as (a, b):
            window = window_of(NAME, 60, NOW)
            taken = await asyncio.gather(*[(a if n % 2 else b).take(NAME, window, 1, 25) for n in range(60)])
            taken += [await (a if n % 2 else b).take(NAME, window, 1, 25) for n in range(20)]
            return taken

    taken = asyncio.run(run())
    assert sum(t.ok for t in taken) == 25
    assert in_redis(redis, "GET", f"tollgate:rate:{NAME}:{window_of(NAME, 60, NOW).start}") == "25"


def test_most_requests_make_no_round_trip(redis):
    async def run():
        async with running(SlicedCounts(redis, node="a")) as (node,):
            calls = counting(node, "take_window")
            window = window_of(NAME, 60, NOW)
            taken = [await node.take(NAME, window, 1, 1000) for _ in range(100)]
            return taken, calls

    taken, calls = asyncio.run(run())
    assert all(t.ok for t in taken)
    assert len(calls) <= 2  # a slice is 1 + a tenth of the limit, far from it
    assert taken[-1].used == 100  # as the x-ratelimit-remaining-* headers read it


def test_slices_shrink_to_one_request_near_the_limit(redis):
    async def run():
        async with running(SlicedCounts(redis, node="a")) as (node,):
            window = window_of(NAME, 60, NOW)
            key = f"tollgate:rate:{NAME}:{window.start}"
            slices, in_store = [], 0
            while (await node.take(NAME, window, 1, 100)).ok:
                now = int(in_redis(redis, "GET", key))
                if now != in_store:
                    slices.append(now - in_store)
                    in_store = now
            return slices

    # 1 + at most a tenth of the limit, then 1 + a quarter of what is left, then one request each.
    assert asyncio.run(run()) == [11] * 6 + [9, 7, 5, 4, 3, 2, 1, 1, 1, 1]


def test_an_idle_node_hands_its_spare_back(redis):
    async def run():
        clock = Clock()
        async with running(SlicedCounts(redis, node="a", clock=clock), SlicedCounts(redis, node="b")) as (a, b):
            window = window_of(NAME, 60, NOW)
            assert (await a.take(NAME, window, 1, 100)).ok  # a holds 1 + 10 spare
            by_b = 0
            while (await b.take(NAME, window, 1, 100)).ok:
                by_b += 1
            assert by_b == 89
            clock.now += rate_slices.IDLE_SECONDS / 2
            await a.sweep()
            assert not (await b.take(NAME, window, 1, 100)).ok  # not idle long enough yet
            clock.now += rate_slices.IDLE_SECONDS / 2
            await a.sweep()
            while (await b.take(NAME, window, 1, 100)).ok:
                by_b += 1
            return by_b

    assert asyncio.run(run()) == 99


def test_tokens_given_back_join_the_nodes_slice(redis):
    async def run():
        async with running(SlicedCounts(redis, node="a")) as (a,):
            calls = counting(a, "take_window")
            window = window_of("tokens:7", 60, NOW)
            first = await a.take("tokens:7", window, 600, 1000)
            a.add("tokens:7", window, -500)  # it used 100 of them
            second = await a.take("tokens:7", window, 400, 1000)
            return first, second, calls

    first, second, calls = asyncio.run(run())
    assert first.ok and first.used == 600
    assert second.ok and second.used == 500 and len(calls) == 1


def test_places_in_flight_are_exact_across_nodes(redis):
    async def run():
        clock = Clock()
        async with running(SlicedCounts(redis, node="a", clock=clock), SlicedCounts(redis, node="b")) as (a, b):
            name = "concurrent:7"
            assert (await a.acquire(name, 3)).ok and (await a.acquire(name, 3)).ok
            assert (await b.acquire(name, 3)).ok
            assert not (await b.acquire(name, 3)).ok and not (await a.acquire(name, 3)).ok
            a.release(name)  # a keeps the place as spare: its next request needs no round trip
            assert not (await b.acquire(name, 3)).ok
            clock.now += rate_slices.IDLE_SECONDS
            await a.sweep()
            assert (await b.acquire(name, 3)).ok
            assert not (await a.acquire(name, 3)).ok
            return in_redis(redis, "HGET", f"tollgate:rate:{name}", "a"), in_redis(redis, "HGET", f"tollgate:rate:{name}", "b")

    assert asyncio.run(run()) == ("1", "2")


def test_a_crashed_nodes_places_come_back_after_its_lease(redis):
    async def run():
        clock = Clock()
        name = "concurrent:7"
        async with running(SlicedCounts(redis, node="crashed"), SlicedCounts(redis, node="b", clock=clock)) as (crashed, b):
            assert (await crashed.acquire(name, 2)).ok and (await crashed.acquire(name, 2)).ok
            assert not (await b.acquire(name, 2)).ok
            expires = int(in_redis(redis, "HGET", f"tollgate:rate:{name}", "@crashed"))
            in_redis(redis, "HSET", f"tollgate:rate:{name}", "@crashed", str(expires - 31_000))  # 31 s later
            assert (await b.acquire(name, 2)).ok and (await b.acquire(name, 2)).ok
            before = int(in_redis(redis, "HGET", f"tollgate:rate:{name}", "@b"))
            clock.now += rate_slices.RENEW_SECONDS
            await b.sweep()  # b, alive, renews its lease
            return before, int(in_redis(redis, "HGET", f"tollgate:rate:{name}", "@b"))

    before, renewed = asyncio.run(run())
    assert renewed > before


def test_without_redis_a_node_counts_alone(redis, caplog):
    async def run():
        async with running(SlicedCounts(f"redis://127.0.0.1:{free_port()}/0", node="a")) as (node,):
            window = window_of(NAME, 60, NOW)
            return [await node.take(NAME, window, 1, 2) for _ in range(3)], await node.acquire("concurrent:7", 1)

    taken, place = asyncio.run(run())
    assert [t.ok for t in taken] == [True, True, False]
    assert all(isinstance(t.counts, LocalCounts) for t in taken) and isinstance(place.counts, LocalCounts)
    assert "Redis unavailable" in caplog.text
