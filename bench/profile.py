"""``make profile``: where the gateway's CPU goes under the bench's load, as a flame graph.

Starts the fake upstream and a gateway on a fresh install (as ``make bench`` does: uvicorn +
aiohttp, one worker, the full path), warms it up, then samples the server with py-spy (from
PyPI, in the dev extras) while closed-loop clients send chat completions, non-streamed and
streamed side by side. Only samples of threads holding the GIL or running are kept (idle waits
are not CPU), from every thread: the event loop and the ledger writer alike.

    python -m bench.profile [--seconds S] [--concurrency C] [--mode json|stream|both] [--rate HZ]
                            [--format flamegraph|raw|speedscope] [--output PATH]

The default output is bench/profile.svg (git-ignored). ``--format raw`` writes py-spy's
collapsed stacks (one ``frame;frame;... count`` line per stack), which ``--top`` summarises.
"""

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench import load, stack
from bench.load import CellResult, Target
from bench.run import run_async, stop_on_sigterm
from bench.services import ServiceSet
from bench.stack import CHAT_PATH, PRIMARY, VENV_BIN

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "profile.svg"


async def drive(target: Target, *, mode: str, concurrency: int, seconds: float) -> list[CellResult]:
    """Closed-loop load for ``seconds``: all workers on one mode, or half of them on each."""
    modes = [False, True] if mode == "both" else [mode == "stream"]
    share = max(1, concurrency // len(modes))
    timeout = aiohttp.ClientTimeout(total=load.REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as session:
        results = [CellResult(target.name, stream, share) for stream in modes]
        await asyncio.gather(*(load.run_workers(session, target, stream=result.stream, concurrency=share,
                                                seconds=seconds, result=result) for result in results))
    return results


def py_spy_argv(pid: int, args: argparse.Namespace) -> list[str]:
    return [str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(args.seconds)),
            "--rate", str(args.rate), "--format", args.format, "--output", str(args.output), "--subprocesses",
            "--nonblocking", *(["--gil"] if args.gil else []), *(["--threads"] if args.threads else [])]


def top_frames(collapsed: Path, *, limit: int = 40) -> str:
    """Self and inclusive sample shares of the hottest frames in py-spy's raw (collapsed) output."""
    own, inclusive, total = Counter(), Counter(), 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples, frames = int(count), stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "self %  frame"]
    lines += [f"{100 * n / total:6.1f}  {frame}" for frame, n in own.most_common(limit)]
    lines += ["", "incl %  frame"]
    lines += [f"{100 * n / total:6.1f}  {frame}" for frame, n in inclusive.most_common(limit)]
    return "\n".join(lines)


def profile(args: argparse.Namespace, work_dir: Path) -> list[CellResult]:
    with ServiceSet() as services:
        _, install, gateway = stack.start_primary(services, work_dir)
        target = Target("gateway", gateway.base_url + CHAT_PATH,
                        {"Authorization": f"Bearer {install.api_key}", "Content-Type": "application/json"})
        print(f"warming up {PRIMARY} for {args.warmup:.0f} s", flush=True)
        run_async(drive(target, mode=args.mode, concurrency=args.concurrency, seconds=args.warmup))
        print(f"sampling it with py-spy for {args.seconds:.0f} s at {args.rate} Hz under {args.mode} load, "
              f"concurrency {args.concurrency}", flush=True)
        sampler = subprocess.Popen(py_spy_argv(gateway.process.pid, args), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)  # py-spy attaches before the load starts
        results = run_async(drive(target, mode=args.mode, concurrency=args.concurrency, seconds=args.seconds + 1))
        output, _ = sampler.communicate(timeout=60)
        if sampler.returncode != 0:
            raise RuntimeError(f"py-spy failed ({sampler.returncode}):\n{output[-2000:]}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Seconds sampled (default 20).")
    parser.add_argument("--warmup", type=float, default=3.0, help="Unsampled seconds of load first (default 3).")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--mode", choices=["json", "stream", "both"], default="both")
    parser.add_argument("--rate", type=int, default=250, help="Samples per second (default 250).")
    parser.add_argument("--format", choices=["flamegraph", "raw", "speedscope"], default="flamegraph")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--gil", action="store_true", help="Only the thread holding the GIL (Python's own CPU).")
    parser.add_argument("--threads", action="store_true", help="A frame per thread at the root of each stack.")
    parser.add_argument("--top", action="store_true", help="With --format raw: print the hottest frames.")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="tollgate-profile-", ignore_cleanup_errors=True) as scratch:
        results = profile(args, Path(scratch))
    for result in results:
        errors = f", errors {dict(result.errors)}" if result.errors else ""
        print(f"  {'stream' if result.stream else 'json':<6} {result.ok} answered{errors}")
    print(f"written to {args.output}")
    if args.top and args.format == "raw":
        print(top_frames(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
