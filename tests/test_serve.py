"""`manage.py serve`: WORKERS processes answer on PORT, and SIGTERM drains them: every stream in
flight finishes and is recorded once."""

import signal
from decimal import Decimal
from pathlib import Path

import httpx

from tests.conftest import free_port, wait_for
from tests.fakes.openai_upstream import Reply
from tests.test_crash_recovery import open_streams
from usage.models import MonthlySpend, OpenReservation, UsageRecord

STREAMS = 4


def workers_of(pid: int) -> list[int]:
    """The uvicorn worker processes a `serve` process started (multiprocessing's spawned children)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def test_serve_runs_workers_that_drain_open_streams_on_sigterm(processes, api_key, tenant, fake_openai):
    port = free_port()
    serve = processes.start(["manage.py", "serve"], WORKERS="2", HOST="127.0.0.1", PORT=str(port),
                            SHUTDOWN_GRACE_SECONDS="30")
    url = f"http://127.0.0.1:{port}"
    processes.wait_healthy(serve, url)
    workers = wait_for(lambda: len(workers_of(serve.pid)) == 2 and workers_of(serve.pid),
                       what="two worker processes")
    for _ in range(4):
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}

    fake_openai.enqueue(*[Reply(text=" ".join(["word"] * 40), chunk_delay=0.03) for _ in range(STREAMS)])
    threads, seen = open_streams(url, api_key, STREAMS)
    wait_for(lambda: OpenReservation.objects.filter(tenant=tenant).count() == STREAMS, timeout=30,
             what="every stream to be admitted")
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(60) == 0, processes.output(serve)[-3000:]
    for thread in threads:
        thread.join(10)
    assert all(lines and lines[-1] == "data: [DONE]" for lines in seen)  # every answer finished
    records = list(UsageRecord.objects.filter(tenant=tenant))
    assert len(records) == STREAMS and {record.ending for record in records} == {"completed"}
    assert not OpenReservation.objects.exists()
    assert MonthlySpend.objects.get(tenant=tenant).reserved == Decimal(0)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
