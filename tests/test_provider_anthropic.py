"""Claude through the gateway: the openai SDK on one side, Anthropic's Messages wire on the other."""

import json
from decimal import Decimal

import openai
import pytest

from tests.fakes.anthropic_upstream import (
    API_KEY,
    API_VERSION,
    DEFAULT_REPLY,
    Reply,
)
from usage.models import UsageRecord

SLUG = "anthropic"
MODEL = "anthropic/claude-sonnet-4-5"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def ask(client, content="Say hello", **kwargs):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}], **kwargs)


def stream_of(client, **kwargs):
    return list(client.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                               **kwargs))


def test_answer_comes_back_and_anthropic_gets_its_own_request_shape(client, claude):
    completion = client.chat.completions.create(
        model=MODEL, max_tokens=50, temperature=0.2, stop=["END"], user="user-42",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Use English."},
                  {"role": "user", "content": "Say hello"}],
    )
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == MODEL
    sent = claude.requests[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == API_KEY and sent["headers"]["anthropic-version"] == API_VERSION
    assert "Authorization" not in sent["headers"]
    assert sent["body"] == {
        "model": "claude-sonnet-4-5", "max_tokens": 50, "temperature": 0.2, "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use English."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
    }


def test_max_tokens_is_always_sent_even_when_the_client_sets_none(client, claude):
    ask(client)
    assert claude.bodies[-1]["max_tokens"] == 8192


def test_cache_reads_and_writes_count_as_prompt_tokens_and_are_billed_at_their_prices(client, claude, tenant,
                                                                                       other_tenant):
    claude.enqueue(Reply(usage={"input_tokens": 100, "cache_read_input_tokens": 50,
                                "cache_creation_input_tokens": 20, "output_tokens": 10}))
    usage = ask(client).usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (170, 10)
    assert usage.prompt_tokens_details.cached_tokens == 50
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.input_tokens, record.cached_tokens, record.cache_write_tokens, record.output_tokens) == (
        170, 50, 20, 10)
    assert (record.provider, record.upstream_model) == ("anthropic", "claude-sonnet-4-5")
    # 100 x $3/M + 50 cache reads x $0.30/M + 20 cache writes x $3.75/M + 10 out x $15/M
    assert record.cost == Decimal("0.000540")
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_streamed_answer_gives_text_then_the_usage_chunk_last(client, claude, tenant):
    claude.enqueue(Reply(text="one two three four", usage={"input_tokens": 12, "cache_read_input_tokens": 4,
                                                           "cache_creation_input_tokens": 0, "output_tokens": 4}))
    chunks = stream_of(client, messages=[{"role": "user", "content": "count"}])
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and all(c.usage is None for c in chunks[:-1])
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (16, 4)
    assert claude.bodies[-1]["stream"] is True
    record = UsageRecord.objects.get(tenant=tenant)
    assert record.streamed and not record.usage_estimated
    assert (record.input_tokens, record.cached_tokens, record.output_tokens) == (16, 4, 4)


def test_tool_call_comes_back_with_its_arguments_as_json_text(client, claude):
    claude.enqueue(Reply(text="", tool_calls=[("get_weather", {"city": "Paris"})]))
    completion = ask(client, "weather?", tools=TOOLS, tool_choice="required")
    message = completion.choices[0].message
    assert message.content is None
    call = message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "toolu_01", "get_weather", {"city": "Paris"})
    assert completion.choices[0].finish_reason == "tool_calls"
    body = claude.bodies[-1]
    assert body["tools"] == [{"name": "get_weather", "description": "Weather for a city",
                              "input_schema": TOOLS[0]["function"]["parameters"]}]
    assert body["tool_choice"] == {"type": "any"}


@pytest.mark.parametrize(("choice", "sent"), [
    ("auto", {"type": "auto"}),
    ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
])
def test_tool_choice_becomes_anthropics_form(client, claude, choice, sent):
    ask(client, "weather?", tools=TOOLS, tool_choice=choice)
    assert claude.bodies[-1]["tool_choice"] == sent


def test_streamed_tool_calls_arrive_in_fragments_indexed_by_tool_not_by_block(client, claude):
    claude.enqueue(Reply(text="Checking both.", tool_calls=[("get_weather", {"city": "Paris"}),
                                                            ("get_time", {})]))
    chunks = stream_of(client, messages=[{"role": "user", "content": "weather and time?"}], tools=TOOLS)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert text == "Checking both."
    firsts = [d for d in deltas if d.id]
    assert [(d.index, d.id, d.function.name) for d in firsts] == [(0, "toolu_01", "get_weather"),
                                                                  (1, "toolu_02", "get_time")]
    arguments = {index: "".join(d.function.arguments or "" for d in deltas if d.index == index) for index in (0, 1)}
    assert json.loads(arguments[0]) == {"city": "Paris"} and json.loads(arguments[1]) == {}
    assert len([d for d in deltas if d.index == 0 and d.function.arguments]) > 1  # fragments, not one piece
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None


def test_tool_results_go_back_as_one_user_turn_of_tool_result_blocks(client, claude):
    client.chat.completions.create(model=MODEL, tools=TOOLS, messages=[
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "toolu_02", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18C and sunny"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "24C"},
    ])
    messages = claude.bodies[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C and sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_02", "content": "24C"},
    ]


def test_structured_output_sends_the_schema_and_answers_with_json(client, claude):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    claude.enqueue(Reply(text='{"city": "Paris"}'))
    completion = ask(client, "Where is the Louvre?",
                     response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}})
    assert json.loads(completion.choices[0].message.content) == {"city": "Paris"}
    assert claude.bodies[-1]["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_json_object_mode_is_refused_before_any_call(client, claude):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, response_format={"type": "json_object"})
    assert caught.value.body["code"] == "unsupported_feature" and "anthropic" in caught.value.body["message"]
    assert claude.requests == []


def test_images_go_as_base64_and_url_sources(client, claude):
    ask(client, [{"type": "text", "text": "Compare these"},
                 {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                 {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}])
    assert claude.bodies[-1]["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize("failure", [
    Reply(status=429, error_type="rate_limit_error", error_message="slow down", headers={"retry-after": "0"}),
    Reply(status=529, error_type="overloaded_error", error_message="Overloaded"),
    Reply(status=500, error_type="api_error", error_message="Internal server error"),
])
def test_rate_limits_and_overload_are_retried_then_succeed(client, claude, tenant, failure):
    claude.enqueue(failure, Reply(text="second time lucky"))
    assert ask(client).choices[0].message.content == "second time lucky"
    assert len(claude.requests) == 2
    assert UsageRecord.objects.get(tenant=tenant).outcome == "ok"


def test_anthropics_400_reaches_the_client_with_its_message(client, claude):
    claude.enqueue(Reply(status=400, error_type="invalid_request_error",
                         error_message="temperature: Input should be less than or equal to 1"))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, temperature=1.5)
    assert "temperature: Input should be less than or equal to 1" in caught.value.body["message"]
    assert len(claude.requests) == 1


def test_prompt_too_long_is_a_context_length_error(client, claude):
    claude.enqueue(Reply(status=400, error_type="invalid_request_error",
                         error_message="prompt is too long: 208000 tokens > 200000 maximum"))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client)
    assert caught.value.body["code"] == "context_length_exceeded"


def test_a_refused_key_is_a_502(client, claude):
    claude.api_key = "sk-ant-rotated"
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client)
    assert caught.value.body["code"] == "upstream_auth_failed" and "invalid x-api-key" in caught.value.body["message"]
    assert len(claude.requests) == 1


@pytest.mark.parametrize(("failure", "stream"), [
    (Reply(status=401, error_type="authentication_error", error_message=f"invalid x-api-key {API_KEY}"), False),
    (Reply(status=401, error_type="authentication_error", error_message=f"invalid x-api-key {API_KEY}"), True),
    (Reply(stream_error_after=0, error_type="permission_error", error_message=f"key {API_KEY} may not"), True),
])
def test_an_upstream_message_quoting_our_key_is_redacted(client, claude, failure, stream):
    claude.enqueue(failure)
    with pytest.raises(openai.InternalServerError) as caught:
        if stream:
            stream_of(client, messages=[{"role": "user", "content": "x"}])
        else:
            ask(client)
    assert caught.value.body["code"] == "upstream_auth_failed"
    assert "[redacted]" in caught.value.body["message"] and API_KEY not in json.dumps(caught.value.body)
    assert len(claude.requests) == 1


def test_a_mid_stream_error_quoting_our_key_is_redacted(client, claude):
    claude.enqueue(Reply(text="alpha beta gamma", stream_error_after=1, error_type="api_error",
                         error_message=f"upstream failure for {API_KEY}"))
    with pytest.raises(openai.APIError) as caught:
        stream_of(client, messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["code"] == "upstream_stream_broken"
    assert "upstream failure for [redacted]" in caught.value.message and API_KEY not in json.dumps(caught.value.body)


def test_seed_is_refused_rather_than_silently_dropped(client, claude):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, seed=7)
    assert caught.value.body["code"] == "unsupported_feature" and "seed" in caught.value.body["message"]
    assert claude.requests == []


def test_error_event_mid_stream_raises_in_the_sdk_and_bills_what_was_produced(client, claude, tenant):
    claude.enqueue(Reply(text="alpha beta gamma delta", stream_error_after=2, error_type="overloaded_error",
                         error_message="Overloaded"))
    received = []
    with pytest.raises(openai.APIError, match="Overloaded"):
        for chunk in client.chat.completions.create(model=MODEL, stream=True,
                                                    messages=[{"role": "user", "content": "x"}]):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "alpha beta"
    assert len(claude.requests) == 1  # output had begun: no retry
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.outcome, record.ending) == ("error", "upstream_error")


def test_overloaded_event_before_any_output_is_retried(client, claude):
    claude.enqueue(Reply(stream_error_after=0, error_type="overloaded_error", error_message="Overloaded"),
                   Reply(text="fine now"))
    chunks = stream_of(client, messages=[{"role": "user", "content": "x"}])
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "fine now"
    assert len(claude.requests) == 2


def test_stream_cut_before_message_stop_is_an_error_not_a_clean_finish(client, claude, tenant):
    claude.enqueue(Reply(text="alpha beta gamma delta", cut_after=2))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": "x"}]))
    assert UsageRecord.objects.get(tenant=tenant).ending == "upstream_error"
