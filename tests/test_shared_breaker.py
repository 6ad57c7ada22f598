"""With REDIS_URL, workers share their circuit breakers through a real Redis server."""

import subprocess
import time

import openai
import pytest

from providers import breaker
from tests.fakes.openai_upstream import Reply

HELLO = [{"role": "user", "content": "hello"}]
COOLDOWN = 0.5


@pytest.fixture
def shared(settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.UPSTREAM_MAX_RETRIES = 0
    settings.BREAKER_FAILURES = 2
    settings.BREAKER_COOLDOWN_SECONDS = COOLDOWN
    subprocess.run(["redis-cli", "-u", redis_url, "FLUSHALL"], check=True, capture_output=True)


def test_a_breaker_opened_by_one_worker_is_seen_by_another(client, fake_openai, shared):
    fake_openai.enqueue(Reply(status=503), Reply(status=503))
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    breaker.reset()  # this process now knows only what Redis knows: another worker's view
    with pytest.raises(openai.InternalServerError, match="cooling down"):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    assert len(fake_openai.requests) == 2
    time.sleep(COOLDOWN + 0.1)  # waiting out the cool-down is the behaviour under test
    breaker.reset()
    answer = client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)  # the probe
    assert answer.choices[0].message.content == "Hello from the fake upstream."
    breaker.reset()
    assert client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)  # closed for all


def test_failures_of_several_workers_add_up(client, fake_openai, shared):
    fake_openai.enqueue(Reply(status=503))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    breaker.reset()  # a second worker fails once too: two in the window, across workers
    fake_openai.enqueue(Reply(status=503))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    breaker.reset()
    with pytest.raises(openai.InternalServerError, match="cooling down"):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
