"""Requests in flight: a key holds a place from admission until its request ends (a stream until its
last event), past the limit a request gets 429 concurrency_limit_exceeded, and every way out (an
answer, the client leaving, a provider's error) frees the place exactly once."""

from collections.abc import Iterator
from contextlib import ExitStack

import httpx

from billing.models import Plan
from gateway.models import ApiKey
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
LONG = " ".join(f"word{n}" for n in range(100))


def post(gateway_url: str, key: str, body: dict = BODY, **options) -> httpx.Response:
    return httpx.post(f"{gateway_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                      **options)


def open_stream(scope: ExitStack, gateway_url: str, key: str) -> Iterator[str]:
    """A stream, answered and then held open: its request is in flight until the scope closes it.
    Its lines from the second on (dropping them would close the stream)."""
    response = scope.enter_context(httpx.stream("POST", f"{gateway_url}/v1/chat/completions",
                                                json={**BODY, "stream": True},
                                                headers={"Authorization": f"Bearer {key}"}))
    assert response.status_code == 200
    lines = response.iter_lines()
    next(lines)
    scope.callback(lines.close)
    return lines


def records(tenant) -> int:
    return UsageRecord.objects.filter(tenant=tenant).count()


def test_streams_count_until_they_end(gateway_url, api_key, other_api_key, tenant, fake_openai):
    Plan.objects.filter(slug="pro").update(max_concurrent_requests=2)
    # The first answer streams for about 3 s, time enough for the requests below; the second for 20.
    fake_openai.enqueue(Reply(text=" ".join(["word"] * 10), chunk_delay=0.3), Reply(text=LONG, chunk_delay=0.2))
    with ExitStack() as first_scope, ExitStack() as second_scope:
        first = open_stream(first_scope, gateway_url, api_key)
        open_stream(second_scope, gateway_url, api_key)
        refused = post(gateway_url, api_key)
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "concurrency_limit_exceeded" and error["type"] == "rate_limit_error"
        assert "plan Pro allows 2 at once" in error["message"]
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["x-ratelimit-limit-requests"] == "600"
        assert post(gateway_url, other_api_key).status_code == 200  # another tenant's key: its own places

        assert "data: [DONE]" in list(first)  # the first ends: its place is free
        assert post(gateway_url, api_key).status_code == 200
    # The second stream's client left: its place is free once it settled.
    wait_for(lambda: records(tenant) == 3, what="the stream the client left to settle")
    fake_openai.enqueue(Reply(text=LONG, chunk_delay=0.2), Reply(text=LONG, chunk_delay=0.2))
    with ExitStack() as scope:
        open_stream(scope, gateway_url, api_key)
        open_stream(scope, gateway_url, api_key)
        assert post(gateway_url, api_key).status_code == 429  # two in flight, none freed twice


def test_a_provider_error_frees_the_place_once(gateway_url, api_key, tenant, fake_openai):
    Plan.objects.filter(slug="pro").update(max_concurrent_requests=2)
    fake_openai.enqueue(Reply(text=LONG, chunk_delay=0.2), Reply(status=400, error_type="invalid_request_error"),
                        Reply(text=LONG, stream_error_after=2), Reply(text=LONG, chunk_delay=0.2))
    with ExitStack() as scope:
        open_stream(scope, gateway_url, api_key)
        assert post(gateway_url, api_key).status_code == 400  # failed before answering
        with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json={**BODY, "stream": True},
                          headers={"Authorization": f"Bearer {api_key}"}) as broken:
            assert '"error"' in broken.read().decode()  # failed mid-stream
        open_stream(scope, gateway_url, api_key)
        refused = post(gateway_url, api_key)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "concurrency_limit_exceeded"
        assert len(fake_openai.requests) == 4


def test_a_client_leaving_before_the_answer_frees_the_place(gateway_url, api_key, tenant, fake_openai):
    Plan.objects.filter(slug="pro").update(max_concurrent_requests=1)
    assert post(gateway_url, api_key).status_code == 200  # warm: the next reaches the provider within the timeout
    fake_openai.enqueue(Reply(hold=True))
    try:
        post(gateway_url, api_key, timeout=httpx.Timeout(5, read=0.5))
    except httpx.ReadTimeout:
        pass
    wait_for(lambda: UsageRecord.objects.filter(tenant=tenant, ending="client_gone").exists(),
             what="the abandoned request to settle")
    fake_openai.release()
    assert post(gateway_url, api_key).status_code == 200


def test_a_keys_own_limit_applies_when_lower(gateway_url, api_key, tenant, fake_openai):
    key = ApiKey.objects.get(tenant=tenant)
    ApiKey.objects.filter(pk=key.pk).update(max_concurrent_requests=1)  # the plan has none
    fake_openai.enqueue(Reply(text=LONG, chunk_delay=0.2))
    with ExitStack() as scope:
        open_stream(scope, gateway_url, api_key)
        refused = post(gateway_url, api_key)
        assert refused.status_code == 429
        assert f"API key '{key.name}' allows 1 at once" in refused.json()["error"]["message"]
