"""A client that leaves mid-stream cancels the upstream call and is billed for what was produced."""

import httpx

from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from usage.models import MonthlySpend, UsageRecord


def test_client_leaving_mid_stream_cancels_upstream_and_bills_produced_tokens(gateway_url, api_key, tenant,
                                                                            other_tenant, fake_openai):
    words = " ".join(f"word{n}" for n in range(50))
    fake_openai.enqueue(Reply(text=words, chunk_delay=0.1))
    body = {"model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "talk"}]}
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {api_key}"}) as response:
        events = 0
        for line in response.iter_lines():
            if line.startswith("data: "):
                events += 1
            if events == 4:  # role chunk + 3 words
                break
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.ending == "client_gone"
    assert record.usage_estimated
    assert 1 <= record.output_tokens < 50
    assert record.cost > 0
    wait_for(lambda: fake_openai.abandoned_streams == 1, what="the upstream stream to be closed")
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.reserved == 0 and ledger.settled == record.cost
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_client_leaving_before_a_non_streamed_answer_is_recorded_once(gateway_url, api_key, tenant, fake_openai):
    fake_openai.enqueue(Reply(hold=True))
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "slow please"}]}
    try:
        httpx.post(f"{gateway_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {api_key}"},
                   timeout=httpx.Timeout(5, read=0.5))
    except httpx.ReadTimeout:
        pass
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    fake_openai.release()
    assert record.ending == "client_gone" and record.outcome == "error"
    assert record.input_tokens > 0 and record.output_tokens == 0
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0
