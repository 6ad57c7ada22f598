"""When a model fails before answering, the request moves down its fallback chain; the client
gets one answer from whichever model served it and pays that model's price, once."""

import openai
import pytest

from billing.models import Plan
from gateway import api_keys
from providers.models import Model
from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(autouse=True)
def no_retries(settings):
    settings.UPSTREAM_MAX_RETRIES = 0  # fall back at the first failure: the chain is what is tested


def test_configured_fallback_serves_when_the_model_is_unavailable(client, fake_openai, tenant, other_tenant):
    Model.objects.filter(public_id="openai/gpt-4o-mini").update(fallbacks=["openai/gpt-4.1-mini"])
    fake_openai.enqueue(Reply(status=503), Reply(text="from the fallback"))
    completion = client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    assert completion.choices[0].message.content == "from the fallback"
    assert completion.model == "openai/gpt-4.1-mini"
    assert [r["body"]["model"] for r in fake_openai.requests] == ["gpt-4o-mini", "gpt-4.1-mini"]
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.model, record.upstream_model, record.outcome) == ("openai/gpt-4.1-mini", "gpt-4.1-mini", "ok")
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_a_bad_request_does_not_fall_back(client, fake_openai):
    Model.objects.filter(public_id="openai/gpt-4o-mini").update(fallbacks=["openai/gpt-4.1-mini"])
    fake_openai.enqueue(Reply(status=400, error_type="invalid_request_error", error_message="bad"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    assert len(fake_openai.requests) == 1


def test_fallback_only_on_the_reasons_configured(client, fake_openai):
    Model.objects.filter(public_id="openai/gpt-4o-mini").update(
        fallbacks=["openai/gpt-4.1"], fallback_on=["context_window"])
    fake_openai.enqueue(Reply(status=429, error_type="rate_limit_error"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    fake_openai.enqueue(Reply(status=400, error_code="context_length_exceeded", error_message="too long"),
                        Reply(text="the larger context answered"))
    answer = client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    assert answer.choices[0].message.content == "the larger context answered"


def test_client_fallback_models_are_tried_in_order_and_limited_to_the_plan(client, fake_openai, tenant):
    fake_openai.enqueue(Reply(status=429, error_type="rate_limit_error"), Reply(status=503), Reply(text="third"))
    answer = client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO, extra_body={
        "fallback_models": ["openai/gpt-4.1-nano", "openai/gpt-4o"]})
    assert (answer.model, answer.choices[0].message.content) == ("openai/gpt-4o", "third")
    assert UsageRecord.objects.get(tenant=tenant).model == "openai/gpt-4o"
    Plan.objects.filter(slug="pro").update(allowed_model_groups=["small"])
    api_keys.forget_keys()
    with pytest.raises(openai.PermissionDeniedError, match="'openai/gpt-4o' is not on plan Pro"):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO,
                                       extra_body={"models": ["openai/gpt-4o-mini", "openai/gpt-4o"]})
    assert len(fake_openai.requests) == 3  # refused before any call


def test_stream_falls_back_before_its_first_token(client, fake_openai, tenant):
    fake_openai.enqueue(Reply(status=503), Reply(text="streamed fallback"))
    chunks = list(client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO, stream=True,
                                                 extra_body={"fallback_models": ["openai/gpt-4.1-mini"]}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed fallback"
    assert {c.model for c in chunks} == {"openai/gpt-4.1-mini"}
    assert UsageRecord.objects.get(tenant=tenant).model == "openai/gpt-4.1-mini"
