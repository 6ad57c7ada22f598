"""With REDIS_URL, workers share their circuit breakers through a real Redis server."""

import shutil
import socket
import subprocess
import time

import openai
import pytest

from providers import breaker
from tests.fakes.openai_upstream import Reply

HELLO = [{"role": "user", "content": "hello"}]
COOLDOWN = 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url():
    binary = shutil.which("redis-server")
    if binary is None:  # make test installs it; a bare pytest run on a machine without it says so
        pytest.fail("redis-server is not installed: run `make test`, which installs it")
    port = free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)


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
