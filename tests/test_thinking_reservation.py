"""With thinking on, the spend reserved covers the max_tokens Claude is actually sent, which the
Anthropic adapter raises to leave room for the thinking budget, on every chat protocol."""

from decimal import Decimal

import openai
import pytest

from billing.models import Plan
from providers.pricing import MILLION
from tests.conftest import wait_for
from tests.fakes.anthropic_upstream import DEFAULT_REPLY
from usage.models import MonthlySpend, UsageRecord

MODEL = "anthropic/claude-haiku-4-5"
OUTPUT_PRICE = Decimal("5.00")  # per million output tokens (catalog.yaml)
THINKING_FLOOR = 2048  # room for Anthropic's smallest thinking budget (1024) and an answer


def ask_chat(client, claude_client) -> str:
    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "answer?"}],
                                                max_completion_tokens=100, reasoning_effort="low")
    return completion.choices[0].message.content


def ask_messages(client, claude_client) -> str:
    message = claude_client.messages.create(model=MODEL, max_tokens=1500, messages=[
        {"role": "user", "content": "answer?"}], thinking={"type": "enabled", "budget_tokens": 1024})
    return "".join(block.text for block in message.content if block.type == "text")


def ask_responses(client, claude_client) -> str:
    response = client.responses.create(model=MODEL, input="answer?", max_output_tokens=100,
                                       reasoning={"effort": "low"}, store=False)
    return response.output_text


@pytest.mark.parametrize("ask", [ask_chat, ask_messages, ask_responses])
def test_reservation_covers_the_max_tokens_claude_is_sent_with_thinking_on(ask, client, claude_sdk_for, api_key,
                                                                           claude, tenant, other_tenant):
    assert ask(client, claude_sdk_for(api_key)) == DEFAULT_REPLY
    sent = claude.bodies[-1]
    assert sent["thinking"]["type"] == "enabled"
    assert sent["max_tokens"] == THINKING_FLOOR  # the client's smaller max_tokens, raised
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.reserved >= sent["max_tokens"] * OUTPUT_PRICE / MILLION
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_a_cap_too_small_for_the_thinking_floor_refuses_before_claude_is_called(client, claude, tenant,
                                                                                other_tenant):
    # Enough for the 100 tokens the client asked for, not for the 2048 Claude would be sent.
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("0.01"))
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "answer?"}],
                                       max_completion_tokens=100, reasoning_effort="low")
    assert refused.value.code == "insufficient_quota"
    assert claude.requests == []
    assert not UsageRecord.objects.filter(tenant__in=[tenant, other_tenant]).exists()
    # Without thinking, the same max_tokens fits under the cap.
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "answer?"}],
                                   max_completion_tokens=100)
    assert claude.bodies[-1]["max_tokens"] == 100
    assert not MonthlySpend.objects.filter(tenant=other_tenant).exists()
