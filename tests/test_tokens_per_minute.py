"""Tokens per minute: a request takes its bound (prompt bytes, 8 per message, max_tokens) of its key's
minute at admission, settlement puts back what it did not use (or charges what it used beyond), and
past the limit a request gets 429 with Retry-After and OpenAI's x-ratelimit-*-tokens headers."""

import json

import httpx
import pytest

from billing import rate_limits
from billing.models import Plan
from gateway import api_keys
from gateway.models import ApiKey
from tests.fakes.openai_upstream import Reply

MAX_TOKENS = 100
BOUND = 2 + 8 + MAX_TOKENS  # "hi": 2 bytes, one message, and the output asked for
BODY = {"model": "openai/gpt-4o-mini", "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": "hi"}]}


def used(prompt: int, completion: int) -> Reply:
    return Reply(usage={"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})


def post(gateway_url: str, key: str, body: dict = BODY) -> httpx.Response:
    return httpx.post(f"{gateway_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def minute(monkeypatch):
    """The rate limits' clock, stopped (a minute cannot end between two requests) and moved on by hand."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(rate_limits, "clock", lambda: now[0])
    return now


def test_answers_carry_the_token_window_and_settlement_gives_back_what_was_not_used(
        gateway_url, api_key, other_api_key, tenant, fake_openai, minute):
    Plan.objects.filter(slug="pro").update(tokens_per_minute=1000)
    fake_openai.enqueue(used(5, 20), used(5, 20))
    first = post(gateway_url, api_key)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert first.headers["x-ratelimit-remaining-tokens"] == str(1000 - BOUND)
    assert first.headers["x-ratelimit-reset-tokens"].endswith("s")
    assert first.headers["x-ratelimit-limit-requests"] == "600"  # the request window is still there
    second = post(gateway_url, api_key)
    assert second.headers["x-ratelimit-remaining-tokens"] == str(1000 - 25 - BOUND)  # 85 of the first came back
    assert post(gateway_url, other_api_key).headers["x-ratelimit-remaining-tokens"] == str(1000 - BOUND)  # its own


def test_without_a_tokens_limit_no_token_headers_are_sent(gateway_url, api_key):
    response = post(gateway_url, api_key)
    assert response.status_code == 200
    assert "x-ratelimit-limit-tokens" not in response.headers
    assert response.headers["x-ratelimit-remaining-requests"] == "599"


def test_past_the_limit_a_request_waits_for_the_next_minute(gateway_url, api_key, other_api_key, tenant,
                                                           fake_openai, minute):
    Plan.objects.filter(slug="pro").update(tokens_per_minute=300)
    fake_openai.enqueue(used(10, MAX_TOKENS), used(10, MAX_TOKENS))  # each uses all it took
    assert post(gateway_url, api_key).status_code == 200
    assert post(gateway_url, api_key).status_code == 200
    refused = post(gateway_url, api_key)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert "tokens per minute" in error["message"] and "plan Pro allows 300" in error["message"]
    assert refused.headers["x-ratelimit-limit-tokens"] == "300"
    assert refused.headers["x-ratelimit-remaining-tokens"] == str(300 - 2 * BOUND)
    reset = int(refused.headers["x-ratelimit-reset-tokens"].removesuffix("s"))
    assert int(refused.headers["retry-after"]) == reset and 1 <= reset <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == str(600 - 3)
    assert len(fake_openai.requests) == 2  # the refused one reached no provider
    assert post(gateway_url, other_api_key).status_code == 200  # another tenant's key: its own minute
    minute[0] += reset
    assert post(gateway_url, api_key).status_code == 200


def test_a_request_larger_than_the_limit_takes_a_whole_minute(gateway_url, api_key, fake_openai, minute):
    Plan.objects.filter(slug="pro").update(tokens_per_minute=50)
    fake_openai.enqueue(used(10, 20), used(10, 20))
    first = post(gateway_url, api_key)
    assert first.status_code == 200  # its bound (110) is more than the limit: it waits for none but a fresh minute
    assert first.headers["x-ratelimit-remaining-tokens"] == "0"
    assert post(gateway_url, api_key).status_code == 429  # 30 used: the next whole minute's worth does not fit
    minute[0] += 60
    assert post(gateway_url, api_key).status_code == 200


def test_tokens_used_beyond_the_bound_are_charged_to_the_minute(gateway_url, api_key, fake_openai, minute):
    Plan.objects.filter(slug="pro").update(tokens_per_minute=1000)
    fake_openai.enqueue(used(10, 500), used(5, 5))  # a provider that produced more than max_tokens
    post(gateway_url, api_key)
    assert post(gateway_url, api_key).headers["x-ratelimit-remaining-tokens"] == str(1000 - 510 - BOUND)


def test_a_streamed_answer_gives_back_its_unused_tokens_when_it_ends(gateway_url, api_key, fake_openai, minute):
    Plan.objects.filter(slug="pro").update(tokens_per_minute=1000)
    fake_openai.enqueue(used(5, 20), used(5, 20))
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json={**BODY, "stream": True},
                      headers={"Authorization": f"Bearer {api_key}"}) as response:
        assert response.headers["x-ratelimit-remaining-tokens"] == str(1000 - BOUND)
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert post(gateway_url, api_key).headers["x-ratelimit-remaining-tokens"] == str(1000 - 25 - BOUND)


def test_a_keys_own_limit_applies_when_lower_than_the_plans(gateway_url, api_key, tenant, fake_openai, minute):
    Plan.objects.filter(slug="pro").update(tokens_per_minute=1000)
    key = ApiKey.objects.get(tenant=tenant)
    ApiKey.objects.filter(pk=key.pk).update(tokens_per_minute=BOUND)
    first = post(gateway_url, api_key)
    assert first.headers["x-ratelimit-limit-tokens"] == str(BOUND)
    refused = post(gateway_url, api_key)
    assert refused.status_code == 429
    assert f"API key '{key.name}' allows {BOUND}" in refused.json()["error"]["message"]

    ApiKey.objects.filter(pk=key.pk).update(tokens_per_minute=50_000)  # higher than the plan's: the plan's holds
    api_keys.forget_keys()
    assert post(gateway_url, api_key).headers["x-ratelimit-limit-tokens"] == "1000"
