"""Each request leaves exactly one usage record, and the daily rollup follows."""

from decimal import Decimal

import openai
import pytest
from django.utils import timezone

from tests.fakes.openai_upstream import Reply
from usage.models import DailyUsage, MonthlySpend, UsageRecord


def test_completion_leaves_one_exact_record_for_its_tenant_only(client, tenant, other_tenant, fake_openai):
    fake_openai.enqueue(Reply(usage={"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
                                     "prompt_tokens_details": {"cached_tokens": 400},
                                     "completion_tokens_details": {"reasoning_tokens": 50}}))
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    record = UsageRecord.objects.get()
    assert record.tenant == tenant
    assert record.api_key.name == "alice laptop"
    assert (record.model, record.provider, record.upstream_model, record.capability) == (
        "openai/gpt-4o-mini", "openai", "gpt-4o-mini", "chat")
    assert (record.input_tokens, record.output_tokens, record.reasoning_tokens, record.cached_tokens) == (
        1000, 200, 50, 400)
    # 600 uncached x $0.15/M + 400 cached x $0.075/M + 200 out x $0.60/M
    assert record.cost == Decimal("0.000240")
    assert record.outcome == "ok" and record.ending == "completed" and record.http_status == 200
    assert record.latency_ms >= 0 and not record.streamed and record.ttft_ms is None
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()

    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.settled == Decimal("0.000240") and ledger.reserved == 0
    assert not MonthlySpend.objects.filter(tenant=other_tenant).exists()


def test_streamed_request_records_time_to_first_token(client, tenant, fake_openai):
    fake_openai.enqueue(Reply(text="a b c", chunk_delay=0.02))
    list(client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                        stream=True))
    record = UsageRecord.objects.get(tenant=tenant)
    assert record.streamed and record.ending == "completed"
    assert record.ttft_ms is not None and record.ttft_ms >= 20
    assert record.latency_ms >= record.ttft_ms
    assert record.output_tokens == 3


def test_daily_rollup_adds_up_requests_tokens_cost_and_errors(client, other_client, tenant, other_tenant,
                                                               fake_openai):
    for _ in range(3):
        client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "one two three"}])
    fake_openai.enqueue(Reply(status=400, error_type="invalid_request_error", error_message="nope"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    other_client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "solo"}])

    today = timezone.now().date()
    echo = DailyUsage.objects.get(tenant=tenant, day=today, model="demo/echo")
    assert (echo.requests, echo.errors, echo.input_tokens, echo.output_tokens) == (3, 0, 9, 9)
    assert echo.cost == sum(r.cost for r in UsageRecord.objects.filter(tenant=tenant, model="demo/echo"))
    failed = DailyUsage.objects.get(tenant=tenant, day=today, model="openai/gpt-4o-mini")
    assert (failed.requests, failed.errors, failed.cost) == (1, 1, 0)
    assert UsageRecord.objects.get(tenant=tenant, model="openai/gpt-4o-mini").error_type == "upstream_bad_request"
    mine = DailyUsage.objects.get(tenant=other_tenant, day=today)
    assert (mine.requests, mine.input_tokens) == (1, 1)
