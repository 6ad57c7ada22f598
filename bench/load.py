"""The load generator: closed-loop workers over keep-alive connections, latency per request.

Each of N workers sends a request, reads the whole answer (every SSE event of a stream, through
``data: [DONE]``), records how long it took and sends the next one, for a fixed duration after
an unrecorded warm-up. Closed loop means the offered load adapts to the server: requests/s is
what the target sustains at that concurrency, and latency includes no client-side queueing.

An answer counts as an error, never silently as a success, when it is not 200, when a stream
ends without ``[DONE]`` or carries an error event, or when the request fails or times out.
"""

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

MODEL = "openai/gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello"}]
REQUEST_TIMEOUT = 30.0  # seconds; bounds the tail of every cell


def request_body(*, stream: bool) -> bytes:
    body: dict = {"model": MODEL, "messages": MESSAGES, "max_tokens": 64}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return json.dumps(body).encode()


@dataclass(frozen=True, slots=True)
class Target:
    """Somewhere that answers POST /v1/chat/completions."""

    name: str
    url: str
    headers: dict[str, str]


@dataclass
class CellResult:
    """One target, one mode, one concurrency."""

    target: str
    stream: bool
    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # successful requests only, seconds
    errors: Counter = field(default_factory=Counter)  # label -> count; warm-up ones labelled so
    sent: int = 0  # every request sent, warm-up included (to check usage records)

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def requests_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float | None:
        """Nearest-rank percentile of successful latencies, in milliseconds."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = max(1, round(fraction * len(ordered) + 0.5)) - 1
        return ordered[min(rank, len(ordered) - 1)] * 1000


async def send_one(session: aiohttp.ClientSession, target: Target, body: bytes, *, stream: bool) -> str | None:
    """Send one request and read all of its answer; an error label, or None on success."""
    try:
        async with session.post(target.url, data=body, headers=target.headers) as response:
            payload = await response.read()
            if response.status != 200:
                return f"HTTP {response.status}"
            if stream:
                if b'data: {"error"' in payload:
                    return "stream error event"
                if not payload.rstrip().endswith(b"data: [DONE]"):
                    return "stream without [DONE]"
            elif b'"choices"' not in payload:
                return "200 without choices"
            return None
    except TimeoutError:
        return "timeout"
    except (aiohttp.ClientError, OSError) as error:
        return type(error).__name__


async def run_workers(session: aiohttp.ClientSession, target: Target, *, stream: bool, concurrency: int,
                      seconds: float, result: CellResult) -> None:
    """``concurrency`` workers issuing requests back to back for ``seconds``, into ``result``."""
    body = request_body(stream=stream)
    until = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < until:
            started = time.perf_counter()
            error = await send_one(session, target, body, stream=stream)
            finished = time.perf_counter()
            result.sent += 1
            if error is None:
                result.latencies.append(finished - started)
            else:
                result.errors[error] += 1

    async with asyncio.timeout(seconds + REQUEST_TIMEOUT + 5), asyncio.TaskGroup() as workers:
        for _ in range(concurrency):
            workers.create_task(worker())


async def measure(target: Target, *, stream: bool, concurrency: int, duration: float,
                  warmup: float) -> CellResult:
    """One cell: warm up (unrecorded) then measure on the same warm connections."""
    result = CellResult(target.name, stream, concurrency)
    warm = CellResult(target.name, stream, concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if warmup > 0:
            await run_workers(session, target, stream=stream, concurrency=concurrency, seconds=warmup, result=warm)
        started = time.perf_counter()
        await run_workers(session, target, stream=stream, concurrency=concurrency, seconds=duration,
                          result=result)
        result.seconds = time.perf_counter() - started
    result.sent += warm.sent  # warm-up requests reached the server too (usage-record check)
    for label, count in warm.errors.items():
        result.errors[f"{label} (warm-up)"] += count
    return result


@dataclass
class HoldResult:
    wanted: int
    sent: int = 0  # requests sent (the others were still waiting for their turn to open when time ran out)
    opened: int = 0  # got a 200 and the first SSE chunk
    seconds_to_open: float = 0.0
    errors: Counter = field(default_factory=Counter)


OPENING_AT_ONCE = 64  # streams being opened at the same moment (held ones do not count)


async def hold_streams(target: Target, count: int, *, open_timeout: float,
                       while_open: Callable[[HoldResult], None]) -> HoldResult:
    """Open ``count`` streamed requests, OPENING_AT_ONCE at a time (1,000 connects in the same
    instant measure the machine's SYN queue, not the gateway's memory), read only their first
    chunk, call ``while_open`` (to measure the server) while all are held, then drop them all."""
    result = HoldResult(wanted=count)
    opening = asyncio.Semaphore(OPENING_AT_ONCE)
    release = asyncio.Event()
    settled = asyncio.Event()  # every stream either opened or failed
    body = request_body(stream=True)

    def one_more_settled() -> None:
        if result.opened + sum(result.errors.values()) >= count:
            settled.set()

    async def hold_one(session: aiohttp.ClientSession) -> None:
        await opening.acquire()
        result.sent += 1
        opened = False
        try:
            async with session.post(target.url, data=body, headers=target.headers) as response:
                if response.status != 200:
                    result.errors[f"HTTP {response.status}"] += 1
                    return
                await response.content.readany()
                opened = True
                opening.release()
                result.opened += 1
                one_more_settled()
                await release.wait()  # leaving unread: aiohttp closes the connection on exit
        except (TimeoutError, aiohttp.ClientError) as error:
            if not opened:
                result.errors[type(error).__name__] += 1
        finally:
            if not opened:
                opening.release()
                one_more_settled()

    connector = aiohttp.TCPConnector(limit=count)
    # No total timeout: the streams are meant to stay open; opening is bounded below.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=open_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        tasks = [asyncio.create_task(hold_one(session)) for _ in range(count)]
        try:
            await asyncio.wait_for(settled.wait(), timeout=open_timeout)
        except TimeoutError:
            pass  # report how many opened in time
        result.seconds_to_open = time.perf_counter() - started
        try:
            while_open(result)
        finally:
            release.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return result
