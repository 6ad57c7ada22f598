"""``make bench``: measure what the gateway costs over calling the provider directly.

    fake upstream (tests/fakes/openai_upstream.py)  <- "direct"
    bare proxy (bench/bare_proxy.py)      -> fake   <- "bare proxy": the floor for any proxy
    gateway (granian/uvicorn/daphne, one worker) -> fake   <- the full path: key, plan, usage record

The primary variant (uvicorn + aiohttp, what `make run` serves with) gets every cell, run back to back with direct and the
bare proxy for each cell so that drift on a shared machine hits all three alike. The other
variants get enough cells to justify the choice of server and transport. Then the gateway's
memory is read with 1,000 streams held open against a slow upstream.

    python -m bench.run [--quick] [--duration S] [--warmup S] [--open-streams N] [--upstream-pool N]
                        [--only matrix|memory] [--output PATH]

Server logs of the last run are kept in bench/results/logs/ for the report's health checks.
"""

import argparse
import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from bench import load, report, stack
from bench.load import CellResult, Target
from bench.provisioning import PROJECT_DIR, UPSTREAM_KEY, Install, create_install
from bench.services import Service, ServiceSet, free_port
from bench.stack import CHAT_PATH, PRIMARY

RESULTS_DIR = Path(__file__).resolve().parent / "results"
APP_DIRS = ("gateway", "providers", "billing", "usage")  # the code under test

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Variant:
    server: str  # granian | uvicorn | daphne
    transport: str  # HTTPX_TRANSPORT: aiohttp | httpx

    @property
    def name(self) -> str:
        return f"{self.server}+{self.transport}"


VARIANTS = [Variant("uvicorn", "aiohttp"), Variant("uvicorn", "httpx"), Variant("granian", "aiohttp"),
            Variant("daphne", "aiohttp")]


@dataclass(frozen=True, slots=True)
class Schedule:
    """What one invocation measures, and for how long."""

    duration: float
    warmup: float
    full_cells: list[tuple[bool, int]]  # (stream, concurrency) for direct, bare proxy and the primary
    other_cells: list[tuple[bool, int]]  # for the other variants
    open_streams: int
    upstream_pool: int | None  # UPSTREAM_MAX_CONNECTIONS of the memory gateway; None: enough for all
    parts: tuple[str, ...]  # "matrix", "memory"


def make_schedule(args: argparse.Namespace) -> Schedule:
    if args.quick:
        full = [(False, 1), (False, 16), (True, 16)]
        other = [(False, 16)]
        duration, warmup, streams = 1.5, 0.5, 200
    else:
        full = [(stream, concurrency) for stream in (False, True) for concurrency in (1, 16, 64)]
        other = [(False, 1), (False, 16), (False, 64), (True, 16)]
        duration, warmup, streams = 4.0, 1.0, 1000
    return Schedule(
        duration=args.duration or duration, warmup=args.warmup if args.warmup is not None else warmup,
        full_cells=full, other_cells=other, open_streams=args.open_streams or streams,
        upstream_pool=args.upstream_pool, parts=tuple(args.only or ("matrix", "memory")),
    )


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    # uvloop on the client too, so the load generator is not what saturates first.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


class Bench:
    """One run: the services it started, the install it made, the report it fills."""

    def __init__(self, schedule: Schedule, services: ServiceSet, work_dir: Path):
        self.schedule = schedule
        self.services = services
        self.work_dir = work_dir
        self.report = report.Report(
            started_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
            machine={"nproc": str(os.cpu_count()), "Python": platform.python_version(),
                     "CPU": cpu_model(), "kernel": platform.release(), "code": code_version()},
            duration=schedule.duration, warmup=schedule.warmup, primary=PRIMARY,
        )
        self.upstream_port = free_port()
        self.upstream: Service | None = None
        self.install: Install | None = None

    # --- services ---------------------------------------------------------------------------
    def start_upstream(self, module: str = "tests.fakes.openai_upstream", *extra: str) -> Service:
        return stack.start_upstream(self.services, self.work_dir, port=self.upstream_port, module=module, extra=extra)

    def start_bare_proxy(self) -> Service:
        assert self.upstream is not None, "prepare() first"
        return stack.start_bare_proxy(self.services, self.work_dir, self.upstream)

    def start_gateway(self, variant: Variant, install: Install, *, label: str = "", **env: str) -> Service:
        return stack.start_gateway(self.services, self.work_dir, install, variant=variant.name,
                                   name=f"gateway {variant.name}{label}", **env)

    def fresh_install(self, name: str) -> Install:
        assert self.install is not None
        # Not "+": settings build a sqlite:/// URL from TOLLGATE_VAR_DIR, which decodes "+" to " ".
        return self.install.copy_to(self.work_dir / name.replace("+", "-"))

    def stop(self, service: Service) -> None:
        service.stop()
        self.report.log_alarms[service.name] = service.log_alarms()
        keep = RESULTS_DIR / "logs" / service.log_path.name
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(service.log_path, keep)

    # --- measuring --------------------------------------------------------------------------
    def measure(self, target: Target, stream: bool, concurrency: int) -> CellResult:
        cell = run_async(load.measure(target, stream=stream, concurrency=concurrency,
                                      duration=self.schedule.duration, warmup=self.schedule.warmup))
        self.report.cells.append(cell)
        errors = f", {cell.error_count} errors {dict(cell.errors)}" if cell.errors else ""
        print(f"  {target.name:<26} {'stream' if stream else 'json':<6} c={concurrency:<3} "
              f"{cell.requests_per_second:7.0f} req/s  p50 {report.ms(cell.percentile_ms(0.5))} ms  "
              f"p99 {report.ms(cell.percentile_ms(0.99))} ms{errors}", flush=True)
        return cell

    def finish_gateway(self, variant: Variant, gateway: Service, install: Install, sent: int) -> None:
        """RSS after the runs, then stop it and check that every request left one usage record."""
        self.report.rss_after_runs[variant.name] = gateway.rss_kib()
        self.stop(gateway)
        self.report.usage_records[variant.name] = (install.count_usage_records(), sent)

    def prepare(self) -> None:
        """The fake upstream, then the install (bootstrap stores the fake's URL in the catalog)."""
        print(f"setting up a Tollgate install in {self.work_dir}", flush=True)
        self.upstream = self.start_upstream()
        self.install = create_install(self.work_dir / "template", f"http://127.0.0.1:{self.upstream_port}/v1")

    def run_matrix(self) -> None:
        assert self.upstream is not None, "prepare() first"
        bare = self.start_bare_proxy()
        direct_target = Target(report.DIRECT, self.upstream.base_url + CHAT_PATH,
                               {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"})
        bare_target = Target(report.BARE, bare.base_url + CHAT_PATH, {"Content-Type": "application/json"})

        for variant in VARIANTS:
            install = self.fresh_install(variant.name)
            gateway = self.start_gateway(variant, install)
            sent = 1  # the readiness probe's chat request
            target = Target(report.gateway_name(variant.name), gateway.base_url + CHAT_PATH,
                            {"Authorization": f"Bearer {install.api_key}", "Content-Type": "application/json"})
            primary = variant.name == PRIMARY
            print(f"{variant.name}{' (with direct and bare proxy, cell by cell)' if primary else ''}", flush=True)
            for stream, concurrency in self.schedule.full_cells if primary else self.schedule.other_cells:
                if primary:
                    self.measure(direct_target, stream, concurrency)
                    self.measure(bare_target, stream, concurrency)
                sent += self.measure(target, stream, concurrency).sent
            self.finish_gateway(variant, gateway, install, sent)
        self.stop(bare)

    def run_memory(self) -> None:
        """RSS of a fresh primary gateway before, while and after holding many streams open."""
        count = self.schedule.open_streams
        print(f"memory: {PRIMARY} with {count} streams held open", flush=True)
        # Same port, so the catalog's base URL now leads to the slow fake.
        self.stop(self.upstream)
        self.upstream = self.start_upstream("bench.slow_upstream", "--words", "240", "--chunk-delay", "0.5")
        install = self.fresh_install("memory")
        # The default pool (512 upstream connections) would queue every stream past the 512th.
        pool = self.schedule.upstream_pool or max(512, count + 64)
        server, transport = PRIMARY.split("+")
        gateway = self.start_gateway(Variant(server, transport), install, label=" (memory)",
                                     UPSTREAM_MAX_CONNECTIONS=str(pool))
        target = Target(report.gateway_name(PRIMARY), gateway.base_url + CHAT_PATH,
                        {"Authorization": f"Bearer {install.api_key}", "Content-Type": "application/json"})
        # Warm every code path (JSON and streams) so "before" is a steady state, not a cold import.
        warm = run_async(load.measure(target, stream=False, concurrency=16, duration=1.0, warmup=0))
        run_async(load.hold_streams(target, 16, open_timeout=30, while_open=lambda _: time.sleep(0.2)))
        sent = 1 + warm.sent + 16 + count  # readiness probe, warm-up, warm streams, held streams
        time.sleep(1.0)
        memory = self.hold_and_read(gateway, install, target, count=count, sent=sent)
        memory.note = (f"Fresh gateway with UPSTREAM_MAX_CONNECTIONS={pool}; the upstream sends a word every "
                       f"0.5 s so each stream stays open inside the gateway; the client opens them "
                       f"{load.OPENING_AT_ONCE} at a time, reads the first chunk of each and holds; {memory.note}.")
        self.report.memory = memory
        print(f"  before {report.mib(memory.before_kib)}, {memory.hold.opened}/{count} open "
              f"{report.mib(memory.during_kib)}, after {report.mib(memory.after_kib)}; threads {memory.threads}",
              flush=True)
        self.stop(gateway)
        self.stop(self.upstream)

    def hold_and_read(self, gateway: Service, install: Install, target: Target, *, count: int,
                      sent: int) -> report.MemoryHold:
        """Gateway RSS and threads at rest, with ``count`` streams held, and at rest again."""
        before, threads_before = sum(gateway.rss_kib().values()), gateway.thread_count()
        during: list[tuple[int, int]] = []

        def read_while_open(_: load.HoldResult) -> None:
            time.sleep(1.0)  # let the last streams' first chunks go through
            during.append((sum(gateway.rss_kib().values()), gateway.thread_count()))

        held = run_async(load.hold_streams(target, count, open_timeout=60, while_open=read_while_open))
        sent -= count - held.sent  # streams still waiting for their turn to open when time ran out were never sent
        # At rest again: every dropped stream settled (one usage record each), its thread gone.
        settled_in = wait_until(lambda: install.count_usage_records() >= sent, timeout=90)
        idle_in = wait_until(lambda: gateway.thread_count() <= threads_before + 4, timeout=20)
        after, threads_after = sum(gateway.rss_kib().values()), gateway.thread_count()
        if settled_in is None:
            note = (f"**only {install.count_usage_records()} of {sent} requests were recorded 90 s after the "
                    "streams were dropped**")
        else:
            note = f"the gateway recorded all {sent} requests {settled_in:.1f} s after the streams were dropped"
        note += (f" and was back to {threads_after} threads {idle_in:.1f} s later" if idle_in is not None
                 else f"; **{threads_after} threads were still alive 20 s later**")
        return report.MemoryHold(variant=PRIMARY, before_kib=before, during_kib=during[0][0], after_kib=after,
                                 threads=(threads_before, during[0][1], threads_after), hold=held, note=note)


def wait_until(condition: Callable[[], bool], *, timeout: float) -> float | None:
    """Seconds until ``condition()`` holds (polled twice a second), or None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def code_version() -> str:
    """The commit measured, and any uncommitted change to the gateway's code on top of it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=PROJECT_DIR, capture_output=True, text=True,
                                  timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--", *APP_DIRS).splitlines()
    return commit + (f" + uncommitted changes to {', '.join(line[3:] for line in dirty)}" if dirty else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def stop_on_sigterm() -> None:
    # Turn SIGTERM into SystemExit so the finally blocks stop every service we started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the gateway against direct calls and a bare proxy.")
    parser.add_argument("--quick", action="store_true", help="Fewer cells, shorter cells, 200 held streams.")
    parser.add_argument("--duration", type=float, help="Seconds measured per cell (default 4, quick 1.5).")
    parser.add_argument("--warmup", type=float, help="Unrecorded seconds before each cell (default 1).")
    parser.add_argument("--open-streams", type=int, help="Streams held open for the memory check (default 1000).")
    parser.add_argument("--upstream-pool", type=int,
                        help="UPSTREAM_MAX_CONNECTIONS of the memory check's gateway (default: streams + 64).")
    parser.add_argument("--only", choices=["matrix", "memory"], action="append",
                        help="Run only this part (repeatable); default both.")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.md")
    args = parser.parse_args(argv)
    schedule = make_schedule(args)
    stop_on_sigterm()
    started = time.monotonic()
    failure: Exception | None = None
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-", ignore_cleanup_errors=True) as scratch, \
            ServiceSet() as services:
        bench = Bench(schedule, services, Path(scratch))
        try:
            bench.prepare()
            if "matrix" in schedule.parts:
                bench.run_matrix()
            if "memory" in schedule.parts:
                bench.run_memory()
        except Exception as error:  # still write what was measured, with the failure in it
            failure = error
            first_line = str(error).splitlines()[0] if str(error) else ""
            bench.report.notes.append(f"**The run failed**: {type(error).__name__}: {first_line}")
    text = report.render(bench.report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print()
    print(text)
    print(f"written to {args.output} in {time.monotonic() - started:.0f} s")
    if failure is not None:
        raise failure
    return 0


if __name__ == "__main__":
    sys.exit(main())
