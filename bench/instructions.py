"""Instructions per request: the gateway's full path counted by callgrind, steadier than CPU time.

CPU time per request (bench/cpu.py) moves by a fifth between runs of the same code on a shared
machine, so a change that saves 5 % cannot be seen in one ``make bench``. How many instructions
the process executes for the same requests hardly depends on the machine's load. This drives the
app in-process (``gateway.asgi.application`` called with the ASGI messages a server would send:
no HTTP server is counted) against the bench's fake upstream (a process of its own, not counted),
under valgrind's callgrind, counting only the measured requests, in all of the app's threads: the
event loop, the ledger writer, the executor.

    python -m bench.instructions [--requests N] [--warmup W] [--concurrency C] [--stream] [--base REV]
                                 [--repeat K]

``--base REV`` counts a checkout of REV (a temporary git worktree) the same way, and prints the
change. Read it as a comparison of two trees, not as an absolute cost:
- everything runs about 50 times slower under callgrind, so work done per second rather than per
  request (the key cache's refreshes, the writer's housekeeping) weighs about 50 times more per
  request than in a real run;
- batch sizes follow timing, so two counts of the same code differ by up to about 6 %: each tree
  is counted ``--repeat`` times (3), the two trees in turn, and the medians are compared. Three
  single pairs of counts of one change once read -9.0 %, -2.7 % and +1.8 %.
Needs valgrind (Debian's ``valgrind``); each count takes one to two minutes.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
CHAT_PATH = "/v1/chat/completions"


def count(tree: Path, args: argparse.Namespace) -> int:
    """Instructions per measured request of the code in ``tree``."""
    with tempfile.TemporaryDirectory(prefix="tollgate-instructions-") as work:
        out = Path(work) / "callgrind.out"
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                sys.executable, "-c", f"import runpy; runpy.run_path({str(Path(__file__).resolve())!r}, "
                "run_name='__main__')", "--inner", "--requests", str(args.requests),
                "--warmup", str(args.warmup), "--concurrency", str(args.concurrency)] + (["--stream"] * args.stream)
        # This file sends the requests (the tree's own bench/ may predate it), the tree's code serves
        # them (run from the tree, not as a script: bench/profile.py would shadow the standard library's).
        result = subprocess.run(argv, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True,
                                text=True)
        totals = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE) if out.exists() else None
        if result.returncode != 0 or totals is None:
            raise RuntimeError(f"counting {tree} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return int(totals.group(1)) // args.requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Instructions per request of the gateway's full path (callgrind).")
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="Streamed chat completions (default: whole answers).")
    parser.add_argument("--base", help="A git revision to count too, and compare with.")
    parser.add_argument("--repeat", type=int, default=3, help="Counts of each tree; their medians are compared.")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)  # the process callgrind runs
    args = parser.parse_args(argv)
    if args.inner:
        drive_in_process(args)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("bench.instructions needs valgrind's callgrind: apt-get install valgrind")
    mode = f"{'streamed' if args.stream else 'whole'} answers, {args.requests} requests after {args.warmup}, " \
           f"concurrency {args.concurrency}"
    if args.base is None:
        current = [count(PROJECT_DIR, args) for _ in range(args.repeat)]
        print(f"{statistics.median(current):,.0f} instructions a request (median of {counts(current)}; {mode})")
        return 0
    current, base = [], []
    with tempfile.TemporaryDirectory(prefix="tollgate-base-") as base_dir:
        subprocess.run(["git", "worktree", "add", "--detach", "-q", base_dir, args.base], cwd=PROJECT_DIR, check=True)
        try:
            for _ in range(args.repeat):  # in turn: a slower stretch of the machine's weighs on both
                base.append(count(Path(base_dir), args))
                current.append(count(PROJECT_DIR, args))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", base_dir], cwd=PROJECT_DIR, check=False)
    base_median, current_median = statistics.median(base), statistics.median(current)
    print(f"{args.base}: {base_median:,.0f} ({counts(base)}); this tree: {current_median:,.0f} ({counts(current)}) "
          f"instructions a request, medians ({current_median / base_median - 1:+.1%}; {mode})")
    return 0


def counts(values: list[int]) -> str:
    return ", ".join(f"{value / 1e6:.2f} M" for value in values)


def drive_in_process(args: argparse.Namespace) -> None:
    """Under callgrind: the fake upstream, a fresh install, then the requests, instructions counted
    for the measured ones only (callgrind_control toggles the count)."""
    from bench import load, stack
    from bench.provisioning import create_install
    from bench.services import ServiceSet

    work = Path(tempfile.mkdtemp(prefix="tollgate-inprocess-"))
    with ServiceSet() as services:
        upstream = stack.start_upstream(services, work)
        install = create_install(work / "install", f"{upstream.base_url}/v1")
        os.environ.update(install.env(HTTPX_TRANSPORT="aiohttp"))
        import uvloop

        from gateway.asgi import application

        body = load.request_body(stream=args.stream)
        headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {install.api_key}".encode()),
                   (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        uvloop.run(serve(application, body, headers, args))


async def serve(application, body: bytes, headers: list, args: argparse.Namespace) -> None:
    shutdown, lifespan = await start_lifespan(application)
    await send_requests(application, body, headers, args.warmup, args.concurrency)
    toggle("on")
    statuses = await send_requests(application, body, headers, args.requests, args.concurrency)
    toggle("off")
    await shutdown.put({"type": "lifespan.shutdown"})
    await lifespan
    if statuses != {200: args.requests}:
        raise SystemExit(f"not every request was answered: {json.dumps(statuses)}")


def toggle(state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], capture_output=True, check=False)


async def start_lifespan(application) -> tuple[asyncio.Queue, asyncio.Task]:
    """The ASGI lifespan a server runs: startup now; put the shutdown message to end it."""
    incoming, outgoing = asyncio.Queue(), asyncio.Queue()
    await incoming.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(application({"type": "lifespan"}, incoming.get, outgoing.put))
    started = await outgoing.get()
    if started["type"] != "lifespan.startup.complete":
        raise SystemExit(f"the app did not start: {started}")
    return incoming, task


async def send_requests(application, body: bytes, headers: list, total: int, concurrency: int) -> dict[int, int]:
    """``total`` chat completions, ``concurrency`` at a time; how many got each status."""
    left, statuses = total, {}

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status = await one_request(application, body, headers)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def one_request(application, body: bytes, headers: list) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http", "root_path": "",
             "headers": headers, "method": "POST", "path": CHAT_PATH, "raw_path": CHAT_PATH.encode(),
             "query_string": b"", "state": {}}
    answered, status, sent = asyncio.Event(), [], False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()  # the client stays until the answer is whole, then leaves
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif not message.get("more_body"):
            answered.set()

    await application(scope, receive, send)
    answered.set()
    return status[0]


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    sys.exit(code)
