"""Gemini's failures through the gateway (finish reasons, retries, errors, redaction of our key) and
the usage it records: the openai SDK on one side, Gemini's generateContent wire on the other."""

import json
from decimal import Decimal

import openai
import pytest

from tests.conftest import serve_provider_from
from tests.fakes.gemini_upstream import (
    API_KEY,
    FakeGemini,
    Reply,
    text_part,
    thought_part,
)
from tests.test_provider_gemini import FLASH, SLUG, TOOLS, WEATHER, ask, stream_of, text_of
from usage.models import UsageRecord


@pytest.fixture(scope="module")
def fake_gemini():
    fake = FakeGemini().start()
    yield fake
    fake.stop()


@pytest.fixture
def gemini(catalog, fake_gemini) -> FakeGemini:
    """Gemini enabled, pointed at the fake, with the fake's key as its credential."""
    fake_gemini.reset()
    serve_provider_from(SLUG, fake_gemini.base_url, API_KEY)
    return fake_gemini


def test_safety_stop_and_blocked_prompt_are_content_filter_finishes(client, gemini, tenant):
    gemini.enqueue(Reply(parts=[], finish_reason="SAFETY"), Reply(block_reason="PROHIBITED_CONTENT"))
    for _ in range(2):
        completion = ask(client, "something unsafe")
        assert completion.choices[0].finish_reason == "content_filter"
        assert completion.choices[0].message.content == ""
    gemini.enqueue(Reply(block_reason="SAFETY"))
    chunks = stream_of(client, messages=[{"role": "user", "content": "something unsafe"}])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
    assert chunks[-1].usage.prompt_tokens == 4
    assert {r.outcome for r in UsageRecord.objects.filter(tenant=tenant)} == {"ok"}


@pytest.mark.parametrize(("status", "grpc_status", "details"), [
    (429, "RESOURCE_EXHAUSTED", [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.05s"}]),
    (503, "UNAVAILABLE", []),
])
def test_retryable_errors_are_retried_then_succeed(client, gemini, status, grpc_status, details):
    gemini.enqueue(Reply(status=status, error_status=grpc_status, error_details=details), Reply(text="second try"))
    assert ask(client).choices[0].message.content == "second try"
    # Refused before any answer, the stream call gets the same HTTP status.
    gemini.enqueue(Reply(status=status, error_status=grpc_status, error_details=details), Reply(text="second try"))
    chunks = stream_of(client, messages=[{"role": "user", "content": "hi"}])
    assert text_of(chunks) == "second try"
    assert len(gemini.requests) == 4


@pytest.mark.parametrize(("grpc_status", "framing"), [("UNAVAILABLE", "bare"), ("INTERNAL", "data"),
                                                      ("DEADLINE_EXCEEDED", "data")])
def test_an_error_in_the_stream_before_any_output_is_retried(client, gemini, grpc_status, framing):
    gemini.enqueue(Reply(stream_error_after=0, error_status=grpc_status, stream_error_framing=framing),
                   Reply(text="second try"))
    assert text_of(stream_of(client, messages=[{"role": "user", "content": "hi"}])) == "second try"
    assert len(gemini.requests) == 2


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "OTHER"])
def test_a_finish_without_a_usable_answer_is_retried_not_an_empty_success(client, gemini, reason):
    failed = Reply(parts=[], finish_reason=reason, finish_message="Malformed function call: get_weather(city=")
    gemini.enqueue(failed, Reply(text="second try"))
    assert ask(client, tools=TOOLS).choices[0].message.content == "second try"
    gemini.enqueue(failed, Reply(text="second try"))
    assert text_of(stream_of(client, messages=[WEATHER], tools=TOOLS)) == "second try"
    assert len(gemini.requests) == 4


def test_a_failed_finish_after_streamed_output_breaks_the_stream(client, gemini, tenant):
    gemini.enqueue(Reply(text="Let me call the tool", finish_reason="MALFORMED_FUNCTION_CALL"))
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model=FLASH, stream=True, messages=[WEATHER], tools=TOOLS):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Let me call the"
    assert caught.value.body["code"] == "upstream_stream_broken" and "MALFORMED_FUNCTION_CALL" in caught.value.message
    assert len(gemini.requests) == 1
    assert UsageRecord.objects.get(tenant=tenant).outcome == "error"


def test_bad_request_keeps_geminis_message_and_is_not_retried(client, gemini):
    gemini.enqueue(Reply(status=400, error_status="INVALID_ARGUMENT", error_message="Request contains an invalid "
                                                                                    "argument."))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client)
    assert "gemini returned 400 INVALID_ARGUMENT: Request contains an invalid argument." in caught.value.message
    assert len(gemini.requests) == 1
    gemini.enqueue(Reply(status=400, error_status="INVALID_ARGUMENT", error_message=(
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).")))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client)
    assert caught.value.body["code"] == "context_length_exceeded"


def test_refused_key_is_a_502(client, gemini):
    gemini.api_key = "AIza-rotated"  # the fake now refuses ours: Gemini's 400 API_KEY_INVALID
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client)
    finally:
        gemini.api_key = API_KEY
    assert caught.value.status_code == 502 and caught.value.body["code"] == "upstream_auth_failed"
    assert "API key not valid" in caught.value.body["message"]
    assert len(gemini.requests) == 1


@pytest.mark.parametrize("failure", [
    Reply(status=403, error_status="PERMISSION_DENIED", error_message=f"Permission denied for key {API_KEY}."),
    Reply(status=400, error_status="INVALID_ARGUMENT", error_message=f"API key not valid: {API_KEY}", error_details=[
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]),
    Reply(stream_error_after=0, error_status="PERMISSION_DENIED", error_message=f"Key {API_KEY} is not allowed."),
])
def test_an_upstream_message_quoting_our_key_is_redacted(client, gemini, failure):
    gemini.enqueue(failure)
    with pytest.raises(openai.InternalServerError) as caught:
        stream_of(client, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "upstream_auth_failed"
    assert "[redacted]" in caught.value.body["message"] and API_KEY not in json.dumps(caught.value.body)
    assert len(gemini.requests) == 1


@pytest.mark.parametrize("framing", ["bare", "data"])
def test_a_mid_stream_error_quoting_our_key_is_redacted(client, gemini, framing):
    gemini.enqueue(Reply(text="one two three four", stream_error_after=2, stream_error_framing=framing,
                         error_message=f"backend died holding {API_KEY}"))
    with pytest.raises(openai.APIError) as caught:
        stream_of(client, messages=[{"role": "user", "content": "count"}])
    assert caught.value.body["code"] == "upstream_stream_broken"
    assert "backend died holding [redacted]" in caught.value.message and API_KEY not in json.dumps(caught.value.body)


def test_unknown_upstream_model_is_a_404(client, gemini):
    gemini.enqueue(Reply(status=404, error_status="NOT_FOUND", error_message="models/gemini-2.5-flash is not found."))
    with pytest.raises(openai.NotFoundError):
        ask(client)


@pytest.mark.parametrize("framing", ["bare", "data"])
def test_error_mid_stream_makes_the_sdk_raise_and_is_recorded(client, gemini, tenant, framing):
    gemini.enqueue(Reply(text="one two three four", stream_error_after=2, error_message="backend died",
                         stream_error_framing=framing))
    with pytest.raises(openai.APIError, match="backend died") as caught:
        stream_of(client, messages=[{"role": "user", "content": "count"}])
    assert caught.value.body["code"] == "upstream_stream_broken"
    gemini.enqueue(Reply(text="one two three four", cut_after=2))
    with pytest.raises(openai.APIError) as caught:
        stream_of(client, messages=[{"role": "user", "content": "count"}])
    assert caught.value.body["code"] == "upstream_stream_broken"
    assert [r.outcome for r in UsageRecord.objects.filter(tenant=tenant)] == ["error", "error"]
    assert len(gemini.requests) == 2


def test_usage_record_has_geminis_tokens_and_the_exact_cost(client, gemini, tenant, other_tenant):
    usage = {"promptTokenCount": 1000, "cachedContentTokenCount": 400, "candidatesTokenCount": 200,
             "thoughtsTokenCount": 300, "totalTokenCount": 1500}
    gemini.enqueue(Reply(parts=[thought_part("hm"), text_part("done")], usage=usage),
                   Reply(parts=[thought_part("hm"), text_part("done")], usage=usage))
    ask(client, reasoning_effort="low")
    stream_of(client, messages=[{"role": "user", "content": "hi"}], reasoning_effort="low")
    records = list(UsageRecord.objects.filter(tenant=tenant).order_by("created_at"))
    assert [r.streamed for r in records] == [False, True]
    for record in records:
        assert (record.model, record.provider, record.upstream_model) == (FLASH, "gemini", "gemini-2.5-flash")
        assert (record.input_tokens, record.output_tokens, record.reasoning_tokens, record.cached_tokens) == (
            1000, 500, 300, 400)
        # 600 uncached x $0.30/M + 400 cached x $0.03/M + 500 out (thoughts included) x $2.50/M
        assert record.cost == Decimal("0.001442")
        assert not record.usage_estimated
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
