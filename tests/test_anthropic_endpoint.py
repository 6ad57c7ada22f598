"""A tenant calls /v1/messages with the official anthropic SDK: any model of the catalog, same plan,
usage records and billing as /v1/chat/completions."""

import json

import anthropic
import httpx
import pytest

from gateway.api_keys import issue_api_key
from tests.conftest import make_tenant, wait_for
from tests.fakes import anthropic_upstream
from tests.fakes.anthropic_upstream import SIGNATURE, text_block, thinking_block
from tests.fakes.openai_upstream import DEFAULT_REPLY, Reply
from usage.models import UsageRecord

GPT = "openai/gpt-4o-mini"
CLAUDE = "anthropic/claude-sonnet-4-5"
TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.fixture
def claude_client(claude_sdk_for, api_key) -> anthropic.Anthropic:
    return claude_sdk_for(api_key)


@pytest.fixture
def other_claude_client(claude_sdk_for, other_api_key) -> anthropic.Anthropic:
    return claude_sdk_for(other_api_key)


def record_of(tenant) -> UsageRecord:
    return wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")


def test_message_through_openai_answers_in_anthropic_shape_with_the_records_usage(
        claude_client, fake_openai, tenant, other_tenant):
    message = claude_client.messages.create(model=GPT, max_tokens=50, stop_sequences=["END"],
                                            metadata={"user_id": "u-42"}, extra_body={"temperature": 0.2},
                                            messages=[{"role": "user", "content": "Say hello"}])
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == GPT
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == DEFAULT_REPLY
    assert message.stop_reason == "end_turn"
    sent = fake_openai.requests[-1]["body"]
    assert (sent["model"], sent["max_completion_tokens"], sent["temperature"]) == ("gpt-4o-mini", 50, 0.2)
    assert sent["stop"] == ["END"] and sent["user"] == "u-42"
    record = record_of(tenant)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (record.input_tokens, record.output_tokens)
    assert record.model == GPT and record.output_tokens == 5 and record.cost > 0
    assert message.usage.cache_read_input_tokens == 0 and message.usage.cache_creation_input_tokens == 0
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_system_prompt_reaches_the_upstream_as_a_system_message(claude_client, fake_openai):
    claude_client.messages.create(model=GPT, max_tokens=20, system="You are terse.",
                                  messages=[{"role": "user", "content": "hi"}])
    claude_client.messages.create(model=GPT, max_tokens=20, messages=[{"role": "user", "content": "hi"}],
                                  system=[{"type": "text", "text": "Rule one.", "cache_control": {"type": "ephemeral"}},
                                          {"type": "text", "text": "Rule two."}])
    first, second = (request["body"]["messages"] for request in fake_openai.requests)
    assert first == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]
    assert second[0] == {"role": "system", "content": "Rule one.\n\nRule two."}


def test_streamed_message_gives_the_event_sequence_and_the_final_message(claude_client, tenant, other_claude_client):
    with claude_client.messages.stream(model="demo/echo", max_tokens=50,
                                       messages=[{"role": "user", "content": "the quick brown fox"}]) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == ["the", " quick", " brown", " fox"]
    assert final.content[0].text == "the quick brown fox" and final.stop_reason == "end_turn"
    record = record_of(tenant)
    assert (final.usage.input_tokens, final.usage.output_tokens) == (record.input_tokens, record.output_tokens) == (4, 4)
    assert record.streamed
    other_claude_client.messages.create(model="demo/echo", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1


def test_raw_stream_events_are_exactly_anthropics(gateway_url, api_key):
    body = {"model": "demo/echo", "max_tokens": 2, "stream": True, "messages": [{"role": "user", "content": "a b c"}]}
    with httpx.stream("POST", f"{gateway_url}/v1/messages", json=body,
                      headers={"x-api-key": api_key, "anthropic-version": "2023-06-01"}) as response:
        raw = response.read().decode()
    events = [chunk.split("\n") for chunk in raw.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names == ["message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    data = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert all(payload["type"] == name for name, payload in zip(names, data, strict=True))
    assert data[-2]["delta"]["stop_reason"] == "max_tokens" and data[-2]["usage"]["output_tokens"] == 2


def test_create_with_stream_true_yields_the_sdks_events(claude_client):
    events = list(claude_client.messages.create(model="demo/echo", max_tokens=50, stream=True,
                                                messages=[{"role": "user", "content": "one two"}]))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "one two"


def test_tool_use_round_trip_through_an_openai_upstream(claude_client, fake_openai):
    fake_openai.enqueue(Reply(tool_call=("get_weather", '{"city": "Paris"}')))
    first = claude_client.messages.create(model=GPT, max_tokens=100, tools=TOOLS, tool_choice={"type": "any"},
                                          messages=[{"role": "user", "content": "weather in Paris?"}])
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert (call.type, call.id, call.name, call.input) == ("tool_use", "call_1", "get_weather", {"city": "Paris"})
    sent = fake_openai.requests[-1]["body"]
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": TOOLS[0]["input_schema"]}}]
    assert sent["tool_choice"] == "required"

    second = claude_client.messages.create(model=GPT, max_tokens=100, tools=TOOLS, messages=[
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"},
                                     {"type": "text", "text": "Thanks"}]},
    ])
    assert second.content[0].text == DEFAULT_REPLY
    messages = fake_openai.requests[-1]["body"]["messages"]
    assert messages[1]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    assert messages[2] == {"role": "tool", "content": "18C and sunny", "tool_call_id": "call_1"}
    assert messages[3] == {"role": "user", "content": "Thanks"}


def test_streamed_tool_use_arrives_as_input_json_deltas(claude_client, fake_openai):
    fake_openai.enqueue(Reply(tool_call=("get_weather", '{"city": "Paris"}')))
    with claude_client.messages.stream(model=GPT, max_tokens=100, tools=TOOLS,
                                       messages=[{"role": "user", "content": "weather?"}]) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert any(e.type == "content_block_delta" and e.delta.type == "input_json_delta" for e in events)
    assert final.stop_reason == "tool_use"
    assert [(b.type, b.name, b.input) for b in final.content] == [("tool_use", "get_weather", {"city": "Paris"})]


def test_an_image_block_reaches_the_upstream_as_an_image_part(claude_client, fake_openai):
    claude_client.messages.create(model=GPT, max_tokens=20, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What is this?"},
    ]}])
    content = fake_openai.requests[-1]["body"]["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image_url", "image_url", "text"]
    assert content[0]["image_url"]["url"] == f"data:image/png;base64,{PIXEL}"
    assert content[1]["image_url"]["url"] == "https://example.com/cat.jpg"


def test_model_not_on_the_plan_is_a_permission_error_in_anthropics_shape(claude_sdk_for, catalog, fake_openai):
    free = make_tenant("freebie", "f@example.com", "free")
    client = claude_sdk_for(issue_api_key(free, name="k").raw)
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        client.messages.create(model=GPT, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    body = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"
    assert "not on plan Free" in body["error"]["message"]
    assert fake_openai.requests == [] and not UsageRecord.objects.exists()


def test_missing_max_tokens_is_a_bad_request_naming_it(gateway_url, api_key, fake_openai):
    client = anthropic.Anthropic(base_url=gateway_url, api_key=api_key, max_retries=0)
    with client, pytest.raises(anthropic.BadRequestError) as caught:
        # The SDK checks its own arguments; the gateway must check a raw body too.
        client.post("/v1/messages", cast_to=httpx.Response,
                    body={"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]})
    assert caught.value.body["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert fake_openai.requests == []


def test_unknown_fields_and_bad_keys_answer_in_anthropics_shape(claude_client, claude_sdk_for, fake_openai):
    with pytest.raises(anthropic.BadRequestError, match="colour: Extra inputs are not permitted"):
        claude_client.messages.create(model="demo/echo", max_tokens=5, messages=[{"role": "user", "content": "x"}],
                                      extra_body={"colour": "blue"})
    with pytest.raises(anthropic.AuthenticationError) as caught:
        claude_sdk_for("tg-not-a-key").messages.create(model="demo/echo", max_tokens=5,
                                                       messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError):
        claude_client.messages.create(model="nope/nothing", max_tokens=5, messages=[{"role": "user", "content": "x"}])


def test_upstream_failure_mid_stream_raises_in_the_sdk_and_is_recorded(claude_client, fake_openai, tenant):
    fake_openai.enqueue(Reply(text="alpha beta gamma delta", stream_error_after=2, error_message="exploded"))
    received = []
    with pytest.raises(anthropic.APIStatusError, match="exploded") as caught:
        with claude_client.messages.stream(model=GPT, max_tokens=50,
                                           messages=[{"role": "user", "content": "x"}]) as stream:
            received.extend(stream.text_stream)
    assert "".join(received) == "alpha beta"
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "api_error"
    record = record_of(tenant)
    assert (record.outcome, record.ending) == ("error", "upstream_error")


def test_upstream_failure_before_the_answer_is_a_server_error(claude_client, fake_openai):
    fake_openai.enqueue(*[Reply(status=500)] * 5)
    with pytest.raises(anthropic.InternalServerError) as caught:
        claude_client.messages.create(model=GPT, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["error"]["type"] == "api_error"


def test_claude_thinking_and_its_signature_go_back_unchanged(claude_client, claude):
    claude.enqueue(anthropic_upstream.Reply(blocks=[thinking_block("Let me think."), text_block("42")]))
    with claude_client.messages.stream(model=CLAUDE, max_tokens=4096,
                                       thinking={"type": "enabled", "budget_tokens": 2048},
                                       messages=[{"role": "user", "content": "answer?"}]) as stream:
        final = stream.get_final_message()
    assert claude.requests[-1]["body"]["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    blocks = [block.type for block in final.content]
    assert "text" in blocks and final.content[blocks.index("text")].text == "42"
    assert "".join(b.thinking for b in final.content if b.type == "thinking") == "Let me think."
    claude_client.messages.create(model=CLAUDE, max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048},
                                  messages=[{"role": "user", "content": "answer?"},
                                            {"role": "assistant", "content": final.content},
                                            {"role": "user", "content": "and?"}])
    replayed = claude.requests[-1]["body"]["messages"][1]["content"]
    assert replayed == [thinking_block("Let me think.", SIGNATURE), text_block("42")]


@pytest.mark.parametrize(("thinking_settings", "budget_sent"), [
    ({"thinking": {"type": "enabled", "budget_tokens": 5000}}, 5000),  # Claude gets the budget as given
    ({"thinking": {"type": "adaptive"}}, 8192),
    ({"output_config": {"effort": "high"}}, 16384),
    ({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}, None),
])
def test_thinking_settings_become_an_effort_the_provider_understands(claude_client, claude,
                                                                     thinking_settings, budget_sent):
    claude_client.messages.create(model=CLAUDE, max_tokens=40000, messages=[{"role": "user", "content": "hi"}],
                                  timeout=30, **thinking_settings)
    thinking = claude.requests[-1]["body"].get("thinking")
    assert (thinking or {}).get("budget_tokens") == budget_sent


def test_thinking_budget_must_fit_under_max_tokens(claude_client, fake_openai):
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: must be greater than thinking.budget_tokens"):
        claude_client.messages.create(model=GPT, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 2048},
                                      messages=[{"role": "user", "content": "hi"}])
    assert fake_openai.requests == []
