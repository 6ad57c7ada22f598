"""Every admitted request ends with exactly one usage record, also when its gateway process is
killed: streams in flight checkpoint what they produced onto their reservation, and another
process's ledger writer, with no traffic at all, records each orphan as ``interrupted`` at its
last checkpoint. SIGTERM, by contrast, drains: every open stream completes and is recorded."""

import signal
import threading
from decimal import Decimal

import httpx

from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from usage.models import MonthlySpend, OpenReservation, UsageRecord

STREAMS = 5
LONG_TEXT = " ".join(f"word{n}" for n in range(400))


def open_streams(url: str, api_key: str, count: int) -> tuple[list[threading.Thread], list[list[str]]]:
    """``count`` streamed completions, each read by a thread of its own until its end (or a cut)."""
    seen: list[list[str]] = [[] for _ in range(count)]

    def read(index: int) -> None:
        body = {"model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "go"}]}
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60,
                              headers={"Authorization": f"Bearer {api_key}"}) as response:
                for line in response.iter_lines():
                    if line:
                        seen[index].append(line)
        except httpx.HTTPError:
            pass  # the process was killed under it
    threads = [threading.Thread(target=read, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    return threads, seen


def test_streams_of_a_killed_process_are_recorded_as_interrupted_without_new_traffic(
        processes, api_key, tenant, other_tenant, fake_openai):
    fake_openai.enqueue(*[Reply(text=LONG_TEXT, chunk_delay=0.05) for _ in range(STREAMS)])
    first = processes.node(RESERVATION_CHECKPOINT_SECONDS="0.2")
    threads, seen = open_streams(first, api_key, STREAMS)
    wait_for(lambda: OpenReservation.objects.filter(tenant=tenant, output_tokens__gt=5).count() == STREAMS,
             timeout=30, what="every stream to checkpoint some output")
    killed = processes.started[0][0]
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    for thread in threads:
        thread.join(10)
    assert all(len(lines) > 3 for lines in seen)  # each client had received part of its answer
    assert not UsageRecord.objects.exists()  # nothing recorded by the dead process

    processes.node(RESERVATION_TTL_SECONDS="1", RESERVATION_SWEEP_SECONDS="0.2")  # no request is ever sent to it
    wait_for(lambda: not OpenReservation.objects.exists(), timeout=30, what="the orphans to be recorded")
    records = list(UsageRecord.objects.filter(tenant=tenant))
    assert len(records) == STREAMS
    assert {record.ending for record in records} == {"interrupted"}
    assert all(record.usage_estimated and record.output_tokens > 5 and record.cost > 0 for record in records)
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.reserved == Decimal(0)
    assert ledger.settled == sum((record.cost for record in records), Decimal(0))
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_sigterm_lets_open_streams_finish_and_records_each_once(processes, api_key, tenant, fake_openai):
    fake_openai.enqueue(*[Reply(text=" ".join(["word"] * 40), chunk_delay=0.02) for _ in range(STREAMS)])
    url = processes.node()
    threads, seen = open_streams(url, api_key, STREAMS)
    wait_for(lambda: OpenReservation.objects.filter(tenant=tenant).count() == STREAMS, timeout=30,
             what="every stream to be admitted")
    node = processes.started[0][0]
    node.send_signal(signal.SIGTERM)
    assert node.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
    for thread in threads:
        thread.join(10)
    assert all(lines and lines[-1] == "data: [DONE]" for lines in seen)  # every answer finished
    records = list(UsageRecord.objects.filter(tenant=tenant))
    assert len(records) == STREAMS and {record.ending for record in records} == {"completed"}
    assert not OpenReservation.objects.exists()
    assert MonthlySpend.objects.get(tenant=tenant).reserved == Decimal(0)
