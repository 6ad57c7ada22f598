"""A client slow to read a stream gets all of it: the gateway waits for it without reading the
provider further, so the provider's between-chunks limit does not run while the client is behind,
and the parts the provider had ready together reach the client whole and in order."""

import json
import time

import httpx

from providers.models import Provider
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from usage.models import MonthlySpend, UsageRecord

WORDS = [f"w{n:05d}" + "x" * 1500 for n in range(4000)]  # about 600 KB of events: more than the sockets hold


def test_a_client_that_stops_reading_for_longer_than_the_read_timeout_still_gets_the_whole_stream(
        gateway_url, api_key, tenant, fake_openai, settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    Provider.objects.filter(slug="openai").update(first_byte_timeout=5, read_timeout=0.2)
    fake_openai.enqueue(Reply(text=" ".join(WORDS)))
    body = {"model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "talk"}]}
    text, finish_reasons = [], []
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gateway_url}/v1/chat/completions", json=body,
            headers={"Authorization": f"Bearer {api_key}"}) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data: {"):
                break
        time.sleep(1.0)  # the client is away for five times the provider's between-chunks limit
        for line in lines:
            if line.startswith("data: {"):
                chunk = json.loads(line[len("data: "):])
                for choice in chunk["choices"]:
                    text.append(choice["delta"].get("content") or "")
                    finish_reasons.append(choice["finish_reason"])
            elif line.startswith("data: ") and line != "data: [DONE]":
                raise AssertionError(f"unexpected event: {line[:200]}")
    assert "".join(text) == " ".join(WORDS)
    assert [reason for reason in finish_reasons if reason] == ["stop"]
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.ending, record.http_status) == ("completed", 200)
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.reserved == 0 and ledger.settled == record.cost
