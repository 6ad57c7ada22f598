"""POST /v1/messages/count_tokens through the official anthropic SDK: Claude's own count from the
Anthropic API, an o200k_base estimate for other models; free, but only for keys and models on the plan."""

import anthropic
import pytest

from billing.models import Plan
from gateway import api_keys
from tests.fakes import anthropic_upstream
from tests.fakes.anthropic_upstream import count_input_tokens
from usage.models import UsageRecord

CLAUDE = "anthropic/claude-sonnet-4-5"
GPT = "openai/gpt-4o-mini"
QUESTION = [{"role": "user", "content": "Hello, world! How many tokens is this?"}]
TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def test_claude_is_counted_by_the_anthropic_api(claude_sdk_for, api_key, other_api_key, claude, tenant,
                                                other_tenant):
    counted = claude_sdk_for(api_key).messages.count_tokens(model=CLAUDE, system="Be brief.", messages=QUESTION,
                                                            tools=TOOLS)
    sent = claude.requests[-1]
    assert sent["path"] == "/v1/messages/count_tokens"
    assert sent["body"]["model"] == "claude-sonnet-4-5" and "max_tokens" not in sent["body"]
    assert sent["body"]["system"] == [{"type": "text", "text": "Be brief."}]
    assert sent["body"]["tools"][0]["name"] == "get_weather"
    assert counted.input_tokens == count_input_tokens(sent["body"]) > 0

    raw = claude_sdk_for(other_api_key).messages.with_raw_response.count_tokens(model=CLAUDE, messages=QUESTION)
    assert raw.headers["x-tollgate-token-count"] == "provider"
    assert raw.parse().input_tokens == count_input_tokens(claude.requests[-1]["body"])
    # Free: neither tenant has a usage record.
    assert not UsageRecord.objects.filter(tenant__in=[tenant, other_tenant]).exists()


def test_other_models_get_the_documented_local_estimate(claude_sdk_for, api_key, fake_openai, tenant):
    sdk = claude_sdk_for(api_key)
    raw = sdk.messages.with_raw_response.count_tokens(model=GPT, messages=QUESTION)
    assert raw.headers["x-tollgate-token-count"] == "estimate"
    # o200k_base: 10 tokens of text, 3 for the message, 3 to prime the reply.
    assert raw.parse().input_tokens == 16
    # "Be brief." is 3 tokens, and a message of its own.
    assert sdk.messages.count_tokens(model=GPT, system="Be brief.", messages=QUESTION).input_tokens == 22
    assert fake_openai.requests == []  # counted here: the provider is not called
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_count_needs_a_valid_key_a_model_on_the_plan_and_a_valid_request(claude_sdk_for, api_key, catalog, tenant):
    with pytest.raises(anthropic.AuthenticationError):
        claude_sdk_for("tg-nope-nope").messages.count_tokens(model=GPT, messages=QUESTION)
    sdk = claude_sdk_for(api_key)
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.count_tokens(model="nobody/nothing", messages=QUESTION)
    tenant.subscription.plan = Plan.objects.get(slug="free")
    tenant.subscription.save()
    api_keys.forget_keys()
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        sdk.messages.count_tokens(model=GPT, messages=QUESTION)
    assert "not on plan Free" in refused.value.message
    assert sdk.messages.count_tokens(model="demo/echo", messages=QUESTION).input_tokens == 16
    with pytest.raises(anthropic.BadRequestError) as invalid:
        sdk.messages.count_tokens(model="demo/echo", messages=QUESTION, extra_body={"max_tokens": 5})
    assert "max_tokens: Extra inputs are not permitted" in invalid.value.message


@pytest.mark.parametrize("failure", ["not_found", "server_error", "our_key_refused"])
def test_claude_gets_the_local_estimate_when_the_anthropic_count_fails(claude_sdk_for, api_key, claude, tenant,
                                                                      caplog, failure):
    if failure == "not_found":
        claude.enqueue(anthropic_upstream.Reply(status=404, error_type="not_found_error",
                                                error_message="model: claude-sonnet-4-5"))
    elif failure == "server_error":
        claude.enqueue(anthropic_upstream.Reply(status=500))
    else:
        claude.api_key = "sk-ant-rotated-upstream"  # the key the gateway holds is no longer valid
    raw = claude_sdk_for(api_key).messages.with_raw_response.count_tokens(model=CLAUDE, messages=QUESTION)
    assert claude.requests[-1]["path"] == "/v1/messages/count_tokens"
    assert raw.status_code == 200
    assert raw.headers["x-tollgate-token-count"] == "estimate"
    assert raw.parse().input_tokens == 16  # the same o200k_base estimate as any other model's
    assert "provider anthropic failed" in caplog.text  # the operator sees why
    assert not UsageRecord.objects.filter(tenant=tenant).exists()
