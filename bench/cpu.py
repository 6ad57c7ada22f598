"""CPU time per request: what the gateway's full path costs the machine, next to the bare proxy.

Latency and requests/s depend on how busy the machine is; CPU time spent per request much less
so. This sends the same fixed number of non-streamed, then streamed, chat completions to the
bare proxy (bench/bare_proxy.py) and to the primary gateway (key, plan, usage record, provisioned
as bench/run.py does), and reads each server's own CPU time (utime + stime from /proc/<pid>/stat,
which covers all of a process's threads, summed over the server and any workers it forked)
before and after. The fake upstream and the load generator are not counted.

    python -m bench.cpu [--requests N] [--warmup N] [--concurrency C] [--rounds R] [--output PATH]

N defaults to $BENCH_CPU_REQUESTS or 2000, warm-up to $BENCH_CPU_WARMUP or 200, R to
$BENCH_CPU_ROUNDS or 3: each mode is measured R times, the bare proxy and the gateway side by side
in each round, and the round with the median ratio is reported with the ratios' range, so a
machine that slows down for a while moves the range, not the verdict.
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench import load, stack
from bench.load import Target
from bench.provisioning import Install
from bench.run import RESULTS_DIR, cpu_model, run_async, stop_on_sigterm, wait_until
from bench.services import Service, ServiceSet
from bench.stack import CHAT_PATH, PRIMARY

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CPU_RATIO_TARGET = 3.0  # gateway CPU per request over the bare proxy's, each mode (the hot-path issue, 16)


def cpu_seconds(service: Service) -> float:
    """utime + stime of the service's process and its descendants (threads included), seconds."""
    ticks = 0
    for pid in service.pids():
        try:
            # Fields after the ")" that ends the command name start at field 3 (state);
            # utime and stime are fields 14 and 15.
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue  # exited between listing and reading
    return ticks / CLOCK_TICKS


async def send_count(target: Target, *, stream: bool, count: int, concurrency: int,
                     cached: bool = False) -> tuple[int, dict[str, int]]:
    """Send exactly ``count`` requests with ``concurrency`` closed-loop workers; (ok, errors).
    ``cached``: the same deterministic request each time (temperature 0), which the tenant's
    answer cache serves after the first."""
    body = load.request_body(stream=stream)
    if cached:
        body = json.dumps({**json.loads(body), "temperature": 0}).encode()
    remaining = count
    ok = 0
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=load.REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def worker() -> None:
            nonlocal remaining, ok
            while remaining > 0:
                remaining -= 1
                error = await load.send_one(session, target, body, stream=stream)
                if error is None:
                    ok += 1
                else:
                    errors[error] = errors.get(error, 0) + 1

        async with asyncio.TaskGroup() as workers:
            for _ in range(concurrency):
                workers.create_task(worker())
    return ok, errors


@dataclass
class CpuCell:
    target: str
    stream: bool
    round: int
    requests: int
    ok: int
    errors: dict[str, int]
    cpu_seconds: float
    wall_seconds: float

    @property
    def ms_per_request(self) -> float:
        return self.cpu_seconds * 1000 / self.requests


def measure(service: Service, target: Target, *, stream: bool, requests: int, warmup: int, concurrency: int,
            recorded: Callable[[], int] | None = None, recorded_before: int = 0, cached: bool = False,
            round: int = 1) -> CpuCell:
    """``recorded``: the gateway's usage-record count, to wait until every request is recorded."""
    if warmup:
        run_async(send_count(target, stream=stream, count=warmup, concurrency=concurrency, cached=cached))
    if recorded is not None:
        wait_until(lambda: recorded() >= recorded_before + warmup, timeout=30)
    time.sleep(0.3)  # let the warm-up's tail (usage records, closing streams) finish
    before = cpu_seconds(service)
    started = time.perf_counter()
    ok, errors = run_async(send_count(target, stream=stream, count=requests, concurrency=concurrency,
                                      cached=cached))
    wall = time.perf_counter() - started
    if recorded is not None:
        wait_until(lambda: recorded() >= recorded_before + warmup + requests, timeout=30)  # work done after the answer (usage record) counts too
    time.sleep(0.3)
    spent = cpu_seconds(service) - before
    cell = CpuCell(target.name, stream, round, requests, ok, errors, spent, wall)
    print(f"  {target.name:<24} {'stream' if stream else 'json':<6} {cell.ms_per_request:6.3f} CPU ms/request "
          f"({spent:.2f} s CPU over {wall:.2f} s wall, {ok}/{requests} ok{f', errors {errors}' if errors else ''})",
          flush=True)
    return cell


def median_round(cells: list[CpuCell], stream: bool) -> tuple[float, float, float, float, float] | None:
    """The round whose ratio is the median: (bare ms, gateway ms, its ratio, lowest, highest ratio)."""
    rounds = {}
    for cell in cells:
        if cell.stream == stream and cell.target in ("bare proxy", "gateway"):
            rounds.setdefault(cell.round, {})[cell.target] = cell.ms_per_request
    pairs = sorted((pair["gateway"] / pair["bare proxy"], pair["bare proxy"], pair["gateway"])
                   for pair in rounds.values() if len(pair) == 2 and pair["bare proxy"])
    if not pairs:
        return None
    ratio, bare, gateway = pairs[(len(pairs) - 1) // 2]
    return bare, gateway, ratio, pairs[0][0], pairs[-1][0]


def render(cells: list[CpuCell], *, requests: int, warmup: int, concurrency: int, rounds: int,
           machine: dict[str, str], usage_note: str) -> str:
    by = {(cell.target, cell.stream): cell for cell in cells}  # the cache hits' one cell
    lines = [
        "# CPU per request: gateway vs bare proxy",
        "",
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC; "
        + ", ".join(f"{key} {value}" for key, value in machine.items()) + ".",
        "",
        f"{requests} requests per cell after {warmup} unmeasured warm-up requests, concurrency {concurrency}; "
        f"{rounds} rounds of each mode, the bare proxy and the gateway side by side in each, and the median "
        "round shown (the ratio's range over the rounds beside it). "
        "CPU = utime + stime of the server process (all threads) and any workers it forked, from "
        f"/proc/<pid>/stat (resolution 1/{CLOCK_TICKS} s); the fake upstream and the client are not counted. "
        f"Gateway: {PRIMARY}, full path (API key, plan, usage record). {usage_note}",
        "",
        f"| mode | bare proxy CPU ms/req | gateway CPU ms/req | gateway / bare proxy (target ≤ {CPU_RATIO_TARGET:g}x) |",
        "|---|---:|---:|---:|",
    ]
    for stream in (False, True):
        row = median_round(cells, stream)
        if row is not None:
            bare, gateway, ratio, low, high = row
            lines.append(f"| {'stream' if stream else 'json'} | {bare:.3f} | {gateway:.3f} | "
                         f"{ratio:.1f}x ({low:.1f}-{high:.1f}x) |")
    hits = by.get(("gateway, cache hits", False))
    if hits is not None:
        lines += ["", f"Answered from the answer cache (the same request with temperature 0, the tenant's cache "
                      f"on; no provider call): **{hits.ms_per_request:.3f} CPU ms** per request, its key, plan, "
                      "lookup and usage record included (target: under 1 ms of gateway time)."]
    failed = [cell for cell in cells if cell.errors]
    if failed:
        lines += ["", "Errors: " + "; ".join(f"{c.target} {'stream' if c.stream else 'json'}: {c.errors}"
                                             for c in failed)]
    return "\n".join(lines) + "\n"


def start_services(services: ServiceSet, work_dir: Path) -> tuple[Install, Service, Service]:
    """The fake upstream, a fresh install, the bare proxy and the gateway, each answering."""
    upstream, install, gateway = stack.start_primary(services, work_dir)
    return install, stack.start_bare_proxy(services, work_dir, upstream), gateway


def measure_all(install: Install, bare: Service, gateway: Service, args: argparse.Namespace) -> tuple[list, str]:
    """Each mode on the bare proxy and the full path, then cache hits; (cells, the usage check)."""
    headers = {"Content-Type": "application/json"}
    bare_target = Target("bare proxy", bare.base_url + CHAT_PATH, headers)
    gateway_target = Target("gateway", gateway.base_url + CHAT_PATH,
                            {**headers, "Authorization": f"Bearer {install.api_key}"})
    cells, sent = [], 1  # the readiness probe's chat request
    print(f"CPU per request, {args.requests} requests after {args.warmup} warm-up, "
          f"concurrency {args.concurrency}", flush=True)
    counts = {"requests": args.requests, "warmup": args.warmup, "concurrency": args.concurrency}
    for number in range(1, args.rounds + 1):  # rounds side by side: a drift of the machine hits both servers
        for stream in (False, True):
            each = counts if number == 1 else {**counts, "warmup": 0}
            cells.append(measure(bare, bare_target, stream=stream, round=number, **each))
            cells.append(measure(gateway, gateway_target, stream=stream, recorded=install.count_usage_records,
                                 recorded_before=sent, round=number, **each))
            sent += each["warmup"] + args.requests
    # The same deterministic request again and again, with the tenant's answer cache on:
    # every one after the first is a hit (key, plan, cache lookup, a usage record; no provider).
    stack.enable_cache(install)
    cells.append(measure(gateway, Target("gateway, cache hits", gateway_target.url, gateway_target.headers),
                         stream=False, recorded=install.count_usage_records, recorded_before=sent, cached=True,
                         **counts))
    sent += args.warmup + args.requests
    recorded = install.count_usage_records()
    note = f"The gateway recorded {recorded} usage records for {sent} requests sent."
    return cells, note if recorded == sent else f"**{note}**"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=int(os.environ.get("BENCH_CPU_REQUESTS", 2000)))
    parser.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_CPU_WARMUP", 200)))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_CPU_ROUNDS", 3)),
                        help="Rounds of each mode (default $BENCH_CPU_ROUNDS or 3); the median round is reported.")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "cpu.md")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-cpu-", ignore_cleanup_errors=True) as scratch, \
            ServiceSet() as services:
        cells, usage_note = measure_all(*start_services(services, Path(scratch)), args)
    machine = {"nproc": str(os.cpu_count()), "CPU": cpu_model()}
    text = render(cells, requests=args.requests, warmup=args.warmup, concurrency=args.concurrency,
                  rounds=args.rounds, machine=machine, usage_note=usage_note)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print()
    print(text)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
