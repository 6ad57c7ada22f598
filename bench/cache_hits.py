"""What the gateway adds to a request its answer cache serves (issue 19: under a millisecond).

Starts the fake OpenAI upstream and a gateway on a fresh install (as bench/cpu.py does), turns
the bench tenant's answer cache on, then sends the same deterministic chat completion
(temperature 0) one at a time: to the fake directly, and to the gateway, whose every request after
the first is a hit (key, plan, rate limit, cache lookup, admission at the cache price, the answer,
a usage record settled behind it; no provider call). Added = gateway p50 minus direct p50, at
concurrency 1, in the same run.

    python -m bench.cache_hits [--requests N] [--rounds R] [--output PATH]
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench import load, stack
from bench.provisioning import UPSTREAM_KEY
from bench.run import RESULTS_DIR, stop_on_sigterm
from bench.services import ServiceSet
from bench.stack import CHAT_PATH, PRIMARY

TARGET_MS = 1.0


async def latencies(url: str, headers: dict[str, str], body: bytes, count: int) -> tuple[list[float], str]:
    """Milliseconds of each of ``count`` requests sent one after another; the last cache header."""
    took, said = [], ""
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            began = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")
                said = response.headers.get("x-tollgate-cache", "")
            took.append((time.perf_counter() - began) * 1000)
    return took, said


def p(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(upstream_url: str, gateway_url: str, api_key: str, *, count: int, rounds: int) -> list[str]:
    body = json.dumps({**json.loads(load.request_body(stream=False)), "temperature": 0}).encode()
    json_headers = {"Content-Type": "application/json"}
    rows = []
    for number in range(1, rounds + 1):
        direct, _ = asyncio.run(latencies(upstream_url + "/chat/completions",
                                          {**json_headers, "Authorization": f"Bearer {UPSTREAM_KEY}"}, body, count))
        hits, said = asyncio.run(latencies(gateway_url + CHAT_PATH,
                                           {**json_headers, "Authorization": f"Bearer {api_key}"}, body, count + 1))
        hits = hits[1:]  # the first may be the miss that fills the cache
        if said != "hit":
            raise RuntimeError(f"the gateway's answers were not cache hits (x-tollgate-cache: {said!r})")
        added = statistics.median(hits) - statistics.median(direct)
        rows.append(f"| {number} | {statistics.median(direct):.3f} | {statistics.median(hits):.3f} | "
                    f"**{added:.3f}** | {p(direct, 0.99):.2f} | {p(hits, 0.99):.2f} |")
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "cache_hits.md")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-hits-", ignore_cleanup_errors=True) as scratch, \
            ServiceSet() as services:
        upstream, install, gateway = stack.start_primary(services, Path(scratch))
        stack.enable_cache(install)
        rows = measure(f"{upstream.base_url}/v1", gateway.base_url, install.api_key, count=args.requests,
                       rounds=args.rounds)
    text = "\n".join([
        "# Answer-cache hits: what the gateway adds", "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. {args.requests} requests per round, one at a time, the same "
        f"deterministic chat completion; gateway {PRIMARY}, one worker, SQLite, its request log on. Added = "
        f"gateway p50 minus direct p50 (target under {TARGET_MS:g} ms).", "",
        "| round | direct p50 ms | gateway hit p50 ms | added p50 ms | direct p99 ms | hit p99 ms |",
        "|---:|---:|---:|---:|---:|---:|", *rows, ""])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
