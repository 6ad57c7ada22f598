"""The rate limits with REDIS_URL: a gateway answers the same windows from Redis's slices as from
its own memory, and two gateway nodes on one Redis share a key's tokens per minute and its places
in flight exactly (a place one node frees is the other's once that node hands its spare back)."""

import subprocess
import time
from contextlib import ExitStack

import pytest

from billing.models import Plan
from gateway.api_keys import issue_api_key
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from tests.test_concurrent_requests import LONG, open_stream
from tests.test_tokens_per_minute import BOUND, MAX_TOKENS, minute, post, used  # noqa: F401 (minute: a fixture)


@pytest.fixture
def on_redis(settings, redis_url):
    subprocess.run(["redis-cli", "-u", redis_url, "FLUSHALL"], check=True, capture_output=True)
    settings.REDIS_URL = redis_url
    return redis_url


@pytest.mark.usefixtures("minute")
def test_a_gateway_on_redis_sends_the_windows_it_would_send_alone(gateway_url, api_key, tenant, fake_openai,
                                                                  on_redis):
    Plan.objects.filter(slug="pro").update(tokens_per_minute=100_000, max_concurrent_requests=1)
    fake_openai.enqueue(used(5, 20), used(5, 20), Reply(text=LONG, chunk_delay=0.2))
    first = post(gateway_url, api_key)
    assert first.headers["x-ratelimit-remaining-tokens"] == str(100_000 - BOUND)
    assert first.headers["x-ratelimit-remaining-requests"] == "599"
    second = post(gateway_url, api_key)
    assert second.headers["x-ratelimit-remaining-tokens"] == str(100_000 - 25 - BOUND)
    assert second.headers["x-ratelimit-remaining-requests"] == "598"
    with ExitStack() as scope:
        open_stream(scope, gateway_url, api_key)
        refused = post(gateway_url, api_key)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "concurrency_limit_exceeded"


def wait_for_a_fresh_minute(node: str, key: str) -> int:
    """Start early in the key's minute, so that it holds the test (setup, not an assertion): how
    many tokens the probe took of it."""
    probe = post(node, key)
    assert probe.status_code == 200
    if int(probe.headers["x-ratelimit-reset-tokens"].removesuffix("s")) < 20:
        time.sleep(int(probe.headers["x-ratelimit-reset-tokens"].removesuffix("s")) + 1)
        return 0
    return BOUND


def test_two_nodes_share_a_keys_tokens_and_places_in_flight(processes, on_redis, api_key, tenant, other_tenant,
                                                            fake_openai):
    Plan.objects.filter(slug="pro").update(tokens_per_minute=8 * BOUND, max_concurrent_requests=2)
    first, second = processes.nodes(2, REDIS_URL=on_redis)
    fake_openai.enqueue(*[used(10, MAX_TOKENS) for _ in range(20)])  # each uses all it took
    taken = wait_for_a_fresh_minute(first, api_key)
    answers = [post(node, api_key) for node in [first, second] * 5]
    assert [answer.status_code for answer in answers].count(200) == 8 - taken // BOUND
    assert {answer.json()["error"]["code"] for answer in answers if answer.status_code == 429} == {
        "rate_limit_exceeded"}

    Plan.objects.filter(slug="pro").update(tokens_per_minute=None)
    fake_openai.reset()
    fake_openai.enqueue(Reply(text=LONG, chunk_delay=0.2), Reply(text=LONG, chunk_delay=0.2))
    key = issue_api_key(tenant, name="fresh").raw  # no node has cached it: it reads the plan as it is now
    with ExitStack() as on_first:
        open_stream(on_first, first, key)
        with ExitStack() as on_second:
            open_stream(on_second, second, key)
            for node in (first, second):
                refused = post(node, key)
                assert refused.status_code == 429 and refused.json()["error"]["code"] == "concurrency_limit_exceeded"
        # The client on the second node left: that node frees its place, and hands it back once idle.
        wait_for(lambda: post(first, key).status_code == 200, what="the second node's place to reach the first")
