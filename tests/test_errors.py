"""Every /v1 error is the OpenAI envelope with the status the SDK maps to the right exception."""

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord


def post(gateway_url, api_key, body, **headers):
    return httpx.post(f"{gateway_url}/v1/chat/completions", content=body,
                      headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json", **headers})


def envelope(response):
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_malformed_json_is_400_saying_so(gateway_url, api_key):
    response = post(gateway_url, api_key, b'{"model": "demo/echo", "messages": [')
    assert response.status_code == 400
    assert "not valid JSON" in envelope(response)["message"]


@pytest.mark.parametrize(("body", "param", "phrase"), [
    ('{"model": 5, "messages": []}', "model", "'model' is required"),
    ('{"model": "demo/echo"}', "messages", "'messages' is required"),
    ('{"model": "demo/echo", "messages": "hi"}', "messages", "must be a list"),
    ('{"model": "demo/echo", "messages": [{"role": "robot", "content": "x"}]}', "messages[0].role", "must be one of"),
    ('{"model": "demo/echo", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
     "temperature", "must be a number"),
    ('{"model": "demo/echo", "messages": [{"role": "user", "content": "x"}], "temperature": 3}',
     "temperature", "between 0 and 2"),
    ('{"model": "demo/echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
     "max_tokens", "at least 1"),
    ('{"model": "demo/echo", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
     "stream", "true or false"),
    ('{"model": "demo/echo", "messages": [{"role": "user", "content": "x"}], "colour": "blue"}',
     "colour", "Unrecognized request argument"),
    ('{"model": "demo/echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 999999}',
     "max_tokens", "at most 4096"),
    ('{"model": "demo/echo", "messages": [{"role": "user", "content": [{"type": "video"}]}]}',
     "messages[0].content[0].type", "'text' or 'image_url'"),
])
def test_wrong_input_is_400_naming_the_field(gateway_url, api_key, body, param, phrase):
    response = post(gateway_url, api_key, body.encode())
    assert response.status_code == 400
    error = envelope(response)
    assert error["param"] == param
    assert phrase in error["message"]
    assert not UsageRecord.objects.exists()


def test_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope/nothing", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["code"] == "model_not_found"
    assert "GET /v1/models" in caught.value.body["message"]


def test_body_over_the_limit_is_413(gateway_url, api_key, settings):
    settings.API_MAX_BODY_BYTES = 2000
    response = post(gateway_url, api_key, b'{"model": "demo/echo", "messages": [{"role": "user", "content": "'
                    + b"x" * 5000 + b'"}]}')
    assert response.status_code == 413
    assert "larger than 2000 bytes" in envelope(response)["message"]


def test_unknown_endpoint_and_wrong_method_answer_in_the_envelope(gateway_url, api_key):
    response = httpx.get(f"{gateway_url}/v1/nothing-here", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 404 and envelope(response)["code"] == "unknown_url"
    response = httpx.get(f"{gateway_url}/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 405 and "accepts POST" in envelope(response)["message"]


def test_upstream_5xx_is_retried_then_succeeds(client, fake_openai, tenant):
    fake_openai.enqueue(Reply(status=503, error_message="overloaded"), Reply(text="second time lucky"))
    completion = client.chat.completions.create(model="openai/gpt-4o-mini",
                                                messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == "second time lucky"
    assert len(fake_openai.requests) == 2
    assert UsageRecord.objects.get(tenant=tenant).outcome == "ok"


def test_upstream_429_honours_retry_after(client, fake_openai):
    fake_openai.enqueue(Reply(status=429, error_type="rate_limit_error", headers={"retry-after-ms": "300"}))
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    first, second = fake_openai.requests
    assert second["at"] - first["at"] >= 0.3  # waited as told, not the shorter jittered backoff


def test_upstream_that_keeps_failing_gives_502_and_a_failed_record(client, fake_openai, tenant, settings):
    settings.UPSTREAM_MAX_RETRIES = 1
    fake_openai.enqueue(*[Reply(status=500, error_message="boom") for _ in range(2)])
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert "openai returned 500: boom" in caught.value.body["message"]
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.outcome, record.ending, record.http_status, record.cost) == ("error", "upstream_error", 502, 0)


def test_upstream_400_is_not_retried_and_reaches_the_client_as_400(client, fake_openai):
    fake_openai.enqueue(Reply(status=400, error_type="invalid_request_error", error_code="context_length_exceeded",
                              error_message="too long"))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["code"] == "context_length_exceeded"
    assert len(fake_openai.requests) == 1


def test_upstream_refusing_our_credential_is_a_502_not_the_clients_fault(client, fake_openai):
    fake_openai.api_key = "sk-rotated"
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    finally:
        fake_openai.api_key = "sk-fake-upstream"
    assert caught.value.body["code"] == "upstream_auth_failed"
    assert "refused the gateway's credential" in caught.value.body["message"]
    assert "Incorrect API key" not in caught.value.body["message"]  # the upstream's words may quote our key


def test_error_in_the_middle_of_a_stream_raises_in_the_sdk_and_bills_what_was_produced(client, fake_openai,
                                                                                         tenant):
    fake_openai.enqueue(Reply(text="alpha beta gamma delta", stream_error_after=2, error_message="exploded"))
    received = []
    with pytest.raises(openai.APIError, match="exploded"):
        for chunk in client.chat.completions.create(model="openai/gpt-4o-mini", stream=True,
                                                    messages=[{"role": "user", "content": "x"}]):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "alpha beta"
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.outcome, record.ending, record.usage_estimated) == ("error", "upstream_error", True)
    assert record.output_tokens > 0 and record.cost > 0


def test_stream_cut_by_the_upstream_is_an_error_not_a_clean_finish(client, fake_openai, tenant):
    fake_openai.enqueue(Reply(text="alpha beta gamma delta", cut_after=2))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="openai/gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": "x"}]))
    record = UsageRecord.objects.get(tenant=tenant)
    assert record.ending == "upstream_error" and record.output_tokens > 0
