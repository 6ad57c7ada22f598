"""A client that leaves mid-stream cancels the upstream call and is billed for what was produced."""

import base64
import json
from decimal import Decimal

import httpx

from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from tests.fakes.png import make_png
from usage.models import MonthlySpend, UsageRecord

TOKENS_PER_IMAGE = 2500  # README: the reservation's per-image bound, also a cut stream's estimate


def read_then_leave(gateway_url: str, api_key: str, body: dict, *, leave_when) -> list[dict]:
    """Stream ``body`` and drop the connection once ``leave_when(deltas so far)`` holds."""
    deltas: list[dict] = []
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {api_key}"}) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                deltas.append(json.loads(line[len("data: "):])["choices"][0]["delta"])
                if leave_when(deltas):
                    break
    return deltas


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


def test_a_cut_stream_bills_each_image_of_the_prompt_at_the_reservations_bound(gateway_url, api_key, tenant,
                                                                               other_tenant, fake_openai):
    fake_openai.enqueue(Reply(text=" ".join(f"word{n}" for n in range(50)), chunk_delay=0.1))
    image = "data:image/png;base64," + base64.b64encode(make_png()).decode()
    prompt = "describe this"
    body = {"model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": [
        {"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": image}}]}]}
    read_then_leave(gateway_url, api_key, body, leave_when=lambda deltas: len(deltas) == 2)  # role chunk + a word
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.ending == "client_gone" and record.usage_estimated
    assert record.input_tokens == len(prompt) // 4 + TOKENS_PER_IMAGE
    assert record.cost >= TOKENS_PER_IMAGE * Decimal("0.15") / 1_000_000  # gpt-4o-mini's input price
    assert MonthlySpend.objects.get(tenant=tenant).settled == record.cost
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_a_cut_stream_bills_the_reasoning_shown_so_far_as_output(gateway_url, api_key, tenant, other_tenant,
                                                                  fake_openai):
    reasoning = " ".join(f"thought{n}" for n in range(40))
    fake_openai.enqueue(Reply(text=" ".join(f"word{n}" for n in range(50)), reasoning=reasoning, chunk_delay=0.1))
    body = {"model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "think"}]}
    deltas = read_then_leave(gateway_url, api_key, body,
                             leave_when=lambda deltas: (deltas[-1].get("content") or "").startswith("word"))
    assert "".join(delta.get("reasoning_content") or "" for delta in deltas) == reasoning  # all of it was shown
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.ending == "client_gone" and record.usage_estimated
    reasoning_tokens = -(-len(reasoning) // 4)
    assert record.reasoning_tokens == reasoning_tokens
    assert reasoning_tokens < record.output_tokens < reasoning_tokens + 50
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
