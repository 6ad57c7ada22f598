"""A deployment that keeps failing is skipped for a cool-down, then one probe decides."""

import time

import openai
import pytest

from providers.models import Model
from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord

HELLO = [{"role": "user", "content": "hello"}]
COOLDOWN = 0.3


@pytest.fixture(autouse=True)
def quick_breaker(settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    settings.BREAKER_FAILURES = 2
    settings.BREAKER_COOLDOWN_SECONDS = COOLDOWN


def ask(client, model="openai/gpt-4o-mini"):
    return client.chat.completions.create(model=model, messages=HELLO)


def test_open_breaker_answers_at_once_with_retry_after_then_a_probe_closes_it(client, fake_openai, tenant):
    fake_openai.enqueue(Reply(status=503), Reply(status=503))
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            ask(client)
    with pytest.raises(openai.InternalServerError) as cooling:
        ask(client)
    assert "cooling down" in cooling.value.body["message"]
    assert int(cooling.value.response.headers["retry-after"]) >= 1
    assert len(fake_openai.requests) == 2  # the third never reached the provider
    wait_until_cooled()
    assert ask(client).choices[0].message.content == "Hello from the fake upstream."  # the probe, closing it
    assert ask(client).choices[0].message.content == "Hello from the fake upstream."
    records = UsageRecord.objects.filter(tenant=tenant)
    assert records.filter(outcome="ok").count() == 2


def wait_until_cooled():
    # Waiting out the cool-down is the behaviour under test (nothing is asserted about time).
    time.sleep(COOLDOWN + 0.05)


def test_failed_probe_opens_the_breaker_again(client, fake_openai):
    fake_openai.enqueue(Reply(status=503), Reply(status=503), Reply(status=503))
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            ask(client)
    wait_until_cooled()
    with pytest.raises(openai.InternalServerError):
        ask(client)  # the probe fails
    with pytest.raises(openai.InternalServerError, match="cooling down"):
        ask(client)
    assert len(fake_openai.requests) == 3


def test_traffic_goes_to_the_fallback_while_the_breaker_is_open(client, fake_openai):
    Model.objects.filter(public_id="openai/gpt-4o-mini").update(fallbacks=["openai/gpt-4.1-mini"])
    fake_openai.enqueue(Reply(status=503), Reply(text="fallback one"), Reply(status=503), Reply(text="fallback two"))
    assert ask(client).choices[0].message.content == "fallback one"
    assert ask(client).choices[0].message.content == "fallback two"
    # Open now: the primary is skipped without a call.
    answer = ask(client)
    assert answer.model == "openai/gpt-4.1-mini"
    assert [r["body"]["model"] for r in fake_openai.requests] == [
        "gpt-4o-mini", "gpt-4.1-mini", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-mini"]


def test_client_errors_do_not_open_the_breaker(client, fake_openai):
    fake_openai.enqueue(*[Reply(status=400, error_type="invalid_request_error") for _ in range(3)])
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            ask(client)
    assert ask(client).choices[0].message.content == "Hello from the fake upstream."
