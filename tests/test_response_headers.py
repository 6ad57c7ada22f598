"""Every /v1 answer says who served it, how many attempts it took, what it cost and where the
key stands in its rate window."""

from decimal import Decimal

import httpx
import pytest
from django.http import BadHeaderError, HttpResponse

from billing.models import Plan
from gateway.v1.headers import add_headers
from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def post(gateway_url, api_key, body=BODY, **headers):
    return httpx.post(f"{gateway_url}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {api_key}", **headers})


def test_completion_headers_name_the_provider_attempts_cost_and_rate_window(gateway_url, api_key, tenant,
                                                                            fake_openai):
    Plan.objects.filter(slug="pro").update(requests_per_minute=50)
    fake_openai.enqueue(Reply(status=503), Reply())
    response = post(gateway_url, api_key)
    assert response.status_code == 200
    record = UsageRecord.objects.get(tenant=tenant)
    assert response.headers["x-tollgate-provider"] == "openai"
    assert response.headers["x-tollgate-model"] == "gpt-4o-mini"
    assert response.headers["x-tollgate-attempts"] == "2"
    assert Decimal(response.headers["x-tollgate-cost"]) == record.cost > 0
    assert response.headers["x-tollgate-request-id"] == record.request_id
    assert response.headers["x-request-id"] == record.request_id
    assert response.headers["x-ratelimit-limit-requests"] == "50"
    assert response.headers["x-ratelimit-remaining-requests"] == "49"
    assert response.headers["x-ratelimit-reset-requests"].endswith("s")


def test_the_clients_request_id_is_echoed_but_never_becomes_ours(gateway_url, api_key, tenant):
    first = post(gateway_url, api_key, **{"x-request-id": "my-trace-1"})
    second = post(gateway_url, api_key, **{"x-request-id": "my-trace-1"})
    assert first.headers["x-request-id"] == second.headers["x-request-id"] == "my-trace-1"
    assert first.headers["x-tollgate-request-id"] != second.headers["x-tollgate-request-id"]
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2  # both billed, once each


def test_streamed_answer_names_the_provider_and_attempts(gateway_url, api_key):
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json={**BODY, "stream": True},
                      headers={"Authorization": f"Bearer {api_key}"}) as response:
        assert response.headers["x-tollgate-provider"] == "openai"
        assert response.headers["x-tollgate-attempts"] == "1"
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.read().endswith(b"data: [DONE]\n\n")


def test_rate_limited_answer_carries_the_window(gateway_url, api_key, other_api_key):
    Plan.objects.filter(slug="pro").update(requests_per_minute=1)
    assert post(gateway_url, api_key).status_code == 200
    refused = post(gateway_url, api_key)
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-limit-requests"] == "1"
    assert "x-tollgate-provider" not in refused.headers  # nothing was called
    assert post(gateway_url, other_api_key).headers["x-ratelimit-remaining-requests"] == "0"  # its own window


def test_headers_outside_printable_ascii_are_set_as_django_sets_them():
    """The fast way of setting a /v1 answer's headers (printable ASCII as it is) leaves anything else
    to Django: encoded as Django encodes it, refused when it holds a newline."""
    ours, djangos = HttpResponse(), HttpResponse()
    values = {"x-tollgate-model": "modèle-ü", "x-tollgate-served-model": "gpt-4o", "x-tollgate-cost": "0.0001"}
    add_headers(ours, values)
    for name, value in values.items():
        djangos[name] = value
    assert list(ours.items()) == list(djangos.items())
    assert ours["X-Tollgate-Served-Model"] == "gpt-4o"
    with pytest.raises(BadHeaderError):
        add_headers(HttpResponse(), {"x-tollgate-model": "a\nSet-Cookie: b"})
