"""A tenant reaches Cohere's models through the gateway with the official openai SDK; the fake
Cohere upstream records what the gateway sent in Cohere's own v2 shape."""

import json
from decimal import Decimal

import openai
import pytest

from providers import router
from providers.models import Model
from tests.conftest import serve_provider_from, wait_for
from tests.fakes.cohere_upstream import API_KEY, DEFAULT_REPLY, PREAMBLE_TOKENS, FakeCohere, Reply
from usage.models import UsageRecord

SLUG = "cohere"
MODEL = "cohere/command-r-08-2024"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture(scope="module")
def fake_cohere():
    fake = FakeCohere().start()
    yield fake
    fake.stop()


@pytest.fixture
def cohere(catalog, fake_cohere):
    """Cohere enabled, pointed at the fake, with one credential."""
    fake_cohere.reset()
    serve_provider_from(SLUG, fake_cohere.base_url, API_KEY)
    return fake_cohere


def declare_features(model: str, *features: str) -> None:
    """What an operator does in the admin for a model that has more (Command A Vision/Reasoning)."""
    Model.objects.filter(public_id=model).update(features=["tools", "json_schema", *features])
    router.forget_catalog()


def ask(client, **kwargs):
    kwargs.setdefault("messages", [{"role": "user", "content": "Say hello"}])
    return client.chat.completions.create(model=kwargs.pop("model", MODEL), **kwargs)


def sent_body(fake) -> dict:
    return fake.requests[-1]["body"]


def test_plain_text_reaches_cohere_in_its_own_shape_and_answers(client, cohere):
    completion = ask(client, messages=[
        {"role": "system", "content": "be brief"}, {"role": "developer", "content": "no emojis"},
        {"role": "user", "content": "Say hello"},
    ], max_tokens=50, temperature=0.2, top_p=0.9, stop=["END"], seed=7)
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == MODEL
    # Billed units, not Cohere's raw token count with its preamble.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (6, 5)
    sent = cohere.requests[-1]
    assert sent["path"] == "/v2/chat"
    assert sent["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert sent["body"] == {
        "model": "command-r-08-2024", "stream": False,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "system", "content": "no emojis"},
                     {"role": "user", "content": "Say hello"}],
        "max_tokens": 50, "temperature": 0.2, "p": 0.9, "stop_sequences": ["END"], "seed": 7,
    }


def test_top_p_of_one_becomes_cohere_highest_p(client, cohere):
    ask(client, top_p=1)
    assert sent_body(cohere)["p"] == 0.99


@pytest.mark.parametrize(("cohere_reason", "openai_reason"), [
    ("MAX_TOKENS", "length"), ("STOP_SEQUENCE", "stop"), ("COMPLETE", "stop"),
])
def test_finish_reasons_arrive_in_openai_terms(client, cohere, cohere_reason, openai_reason):
    cohere.enqueue(Reply(finish_reason=cohere_reason), Reply(finish_reason=cohere_reason))
    assert ask(client).choices[0].finish_reason == openai_reason
    chunks = list(ask(client, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == openai_reason


def test_streamed_text_gives_tokens_then_the_usage_chunk_last(client, cohere):
    cohere.enqueue(Reply(text="one two three four"))
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])
    assert sent_body(cohere)["stream"] is True
    assert cohere.requests[-1]["headers"]["Accept"] == "text/event-stream"


def test_stream_without_event_lines_and_with_a_done_marker_reads_the_same(client, cohere):
    cohere.enqueue(Reply(text="alpha beta", event_lines=False, done_marker=True))
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "alpha beta"
    assert chunks[-1].usage.completion_tokens == 2


def test_tool_call_comes_back_with_the_plan_as_reasoning(client, cohere):
    cohere.enqueue(Reply(tool_calls=[("get_weather", '{"city": "Paris"}')], tool_plan="I will look it up."))
    completion = ask(client, messages=[{"role": "user", "content": "weather?"}], tools=TOOLS,
                     tool_choice="required")
    message = completion.choices[0].message
    call = message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("call_0", "get_weather",
                                                                                    {"city": "Paris"})
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.model_extra["reasoning_content"] == "I will look it up."
    sent = sent_body(cohere)
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "REQUIRED"


@pytest.mark.parametrize(("choice", "sent"), [("none", "NONE"), ("auto", None)])
def test_tool_choice_none_and_auto_in_cohere_terms(client, cohere, choice, sent):
    ask(client, tools=TOOLS, tool_choice=choice)
    assert sent_body(cohere).get("tool_choice") == sent


def test_strict_function_tools_turn_on_cohere_strict_tools(client, cohere):
    strict = [{"type": "function", "function": {**TOOLS[0]["function"], "strict": True}}]
    ask(client, tools=strict)
    assert sent_body(cohere)["strict_tools"] is True
    assert sent_body(cohere)["tools"] == TOOLS


def test_streamed_tool_calls_arrive_in_fragments_with_their_index(client, cohere):
    # After a thinking block (Cohere's index 0) the calls are Cohere's indexes 1 and 2: ours 0 and 1.
    cohere.enqueue(Reply(tool_calls=[("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Oslo"}')],
                         thinking="Both at once.", tool_plan="Two cities."))
    chunks = list(ask(client, messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, stream=True,
                      stream_options={"include_usage": True}))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    starts = [d for d in deltas if d.id]
    assert [(d.index, d.id, d.function.name) for d in starts] == [(0, "call_0", "get_weather"),
                                                                  (1, "call_1", "get_weather")]
    for index, city in ((0, "Paris"), (1, "Oslo")):
        fragments = [d.function.arguments for d in deltas if d.index == index and d.function.arguments]
        assert len(fragments) == 2 and json.loads("".join(fragments)) == {"city": city}
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in chunks if c.choices)
    assert reasoning == "Both at once.\n\nTwo cities."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None


def test_tool_results_go_back_to_cohere_in_the_next_turn(client, cohere):
    ask(client, tools=TOOLS, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "reasoning_content": "I will look it up.", "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": '{"temperature": "18C"}'},
    ])
    messages = sent_body(cohere)["messages"]
    assert messages[1] == {"role": "assistant", "tool_plan": "I will look it up.", "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert messages[2] == {"role": "tool", "tool_call_id": "call_0", "content": '{"temperature": "18C"}'}


def test_a_named_tool_choice_is_refused_naming_cohere_before_any_call(client, cohere):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert caught.value.body["code"] == "unsupported_feature"
    assert "Cohere" in caught.value.body["message"] and "tool_choice" in caught.value.body["message"]
    assert cohere.requests == []


def test_structured_output_sends_the_schema_as_cohere_json_object(client, cohere):
    cohere.enqueue(Reply(text='{"name": "Ada", "age": 36}'))
    completion = ask(client, response_format={"type": "json_schema", "json_schema": {
        "name": "person", "schema": SCHEMA, "strict": True}})
    assert json.loads(completion.choices[0].message.content) == {"name": "Ada", "age": 36}
    assert sent_body(cohere)["response_format"] == {"type": "json_object", "json_schema": SCHEMA}
    ask(client, response_format={"type": "json_object"})
    assert sent_body(cohere)["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("url", [PIXEL, "https://example.com/cat.png"])
def test_image_input_is_refused_for_models_declared_without_vision(client, cohere, url):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]}])
    assert "vision" in caught.value.body["message"] and "cohere" in caught.value.body["message"]
    assert cohere.requests == []


@pytest.mark.parametrize("url", [PIXEL, "https://example.com/cat.png"])
def test_image_input_reaches_a_vision_model_as_cohere_image_url_blocks(client, cohere, url):
    declare_features("cohere/command-a-03-2025", "vision")
    ask(client, model="cohere/command-a-03-2025", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]}])
    assert sent_body(cohere)["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]


def test_reasoning_effort_is_refused_for_models_declared_without_reasoning(client, cohere):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, reasoning_effort="high")
    assert "reasoning" in caught.value.body["message"] and "cohere" in caught.value.body["message"]
    assert cohere.requests == []


@pytest.mark.parametrize(("effort", "thinking"), [
    ("low", {"type": "enabled", "token_budget": 2048}), ("high", {"type": "enabled"}), ("none", {"type": "disabled"}),
])
def test_reasoning_effort_becomes_cohere_thinking_on_a_reasoning_model(client, cohere, effort, thinking):
    declare_features("cohere/command-a-03-2025", "reasoning")
    ask(client, model="cohere/command-a-03-2025", reasoning_effort=effort)
    assert sent_body(cohere)["thinking"] == thinking


def test_thinking_comes_back_as_reasoning_content_streamed_and_not(client, cohere):
    cohere.enqueue(Reply(text="42", thinking="think hard"), Reply(text="42", thinking="think hard"))
    completion = ask(client)
    assert completion.choices[0].message.content == "42"
    assert completion.choices[0].message.model_extra["reasoning_content"] == "think hard"
    chunks = list(ask(client, stream=True))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks)
    assert reasoning == "think hard"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "42"


def test_thinking_then_a_tool_plan_read_the_same_streamed_and_not(client, cohere):
    reply = dict(thinking="weigh the options", tool_plan="look it up", tool_calls=[("get_weather", "{}")])
    cohere.enqueue(Reply(**reply), Reply(**reply))
    completion = ask(client, tools=TOOLS)
    assert completion.choices[0].message.model_extra["reasoning_content"] == "weigh the options\n\nlook it up"
    chunks = list(ask(client, tools=TOOLS, stream=True))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks)
    assert reasoning == "weigh the options\n\nlook it up"


def test_replayed_thinking_goes_back_as_a_thinking_block(client, cohere):
    ask(client, messages=[
        {"role": "user", "content": "answer?"},
        {"role": "assistant", "content": "42", "reasoning_content": "think hard"},
        {"role": "user", "content": "why?"},
    ])
    assert sent_body(cohere)["messages"][1] == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "think hard"}, {"type": "text", "text": "42"}]}


def test_usage_record_bills_cohere_billed_units_at_the_catalog_price(client, cohere, tenant, other_tenant):
    cohere.enqueue(Reply(usage={"billed_units": {"input_tokens": 1000, "output_tokens": 200},
                                "tokens": {"input_tokens": 1000 + PREAMBLE_TOKENS, "output_tokens": 210},
                                "cached_tokens": 500}))
    ask(client)
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.provider, record.upstream_model) == ("cohere", "command-r-08-2024")
    assert (record.input_tokens, record.output_tokens, record.cached_tokens) == (1000, 200, 0)
    # 1000 input at $0.15/M + 200 output at $0.60/M
    assert record.cost == Decimal("0.0002700000")
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_streamed_usage_record_comes_from_message_end(client, cohere, tenant, other_tenant):
    cohere.enqueue(Reply(text="a b c", usage={"billed_units": {"input_tokens": 10, "output_tokens": 3},
                                              "tokens": {"input_tokens": 74, "output_tokens": 3}}))
    list(ask(client, stream=True))
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (10, 3, False)
    assert record.cost == Decimal("0.0000033000")  # 10 x 0.15 + 3 x 0.60, per million
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


@pytest.mark.parametrize("reply", [
    Reply(status=429, error_message="You are past the per minute request limit", headers={"Retry-After": "0"}),
    Reply(status=503, error_message="service unavailable"),
    Reply(status=500, error_message="internal server error"),
])
def test_retryable_upstream_errors_are_retried_then_succeed(client, cohere, tenant, reply):
    cohere.enqueue(reply, Reply(text="second time lucky"))
    assert ask(client).choices[0].message.content == "second time lucky"
    assert len(cohere.requests) == 2
    assert wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first()).outcome == "ok"


def test_a_cohere_400_keeps_its_message_and_is_not_retried(client, cohere):
    cohere.enqueue(Reply(status=400, error_message="invalid request: response_format is not supported with RAG."))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client)
    assert "response_format is not supported with RAG" in caught.value.body["message"]
    assert len(cohere.requests) == 1


def test_a_prompt_over_the_context_window_is_context_length_exceeded(client, cohere):
    cohere.enqueue(Reply(status=400, error_message="too many tokens: total number of tokens in the prompt "
                                                   "cannot exceed 128000 - received 130000."))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client)
    assert caught.value.body["code"] == "context_length_exceeded"


def test_cohere_refusing_our_key_is_a_502_that_never_shows_the_key(client, cohere):
    cohere.api_key = "co-rotated"
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client)
    assert caught.value.body["code"] == "upstream_auth_failed"
    assert "invalid api token" in caught.value.body["message"]
    assert API_KEY not in json.dumps(caught.value.body)
    assert len(cohere.requests) == 1


def test_an_upstream_message_quoting_our_key_is_redacted(client, cohere):
    cohere.enqueue(Reply(status=403, error_message=f"key {API_KEY} may not use this model"))
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client)
    assert API_KEY not in json.dumps(caught.value.body)
    assert "[redacted]" in caught.value.body["message"]


def test_an_error_at_message_end_mid_stream_raises_in_the_sdk(client, cohere, tenant):
    cohere.enqueue(Reply(text="alpha beta gamma delta", stream_error_after=2, error_message="generation exploded"))
    received = []
    with pytest.raises(openai.APIError, match="generation exploded"):
        for chunk in ask(client, stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "alpha beta"
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first())
    assert (record.outcome, record.ending, record.usage_estimated) == ("error", "upstream_error", True)


def test_a_stream_cut_before_message_end_is_an_error_not_a_clean_finish(client, cohere, tenant):
    cohere.enqueue(Reply(text="alpha beta gamma delta", cut_after=2))
    with pytest.raises(openai.APIError) as caught:
        list(ask(client, stream=True))
    assert caught.value.body["code"] == "upstream_stream_broken"
    assert len(cohere.requests) == 1  # output had begun: not retried
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first())
    assert record.ending == "upstream_error" and record.output_tokens > 0


def test_a_failed_generation_before_any_output_is_retried(client, cohere):
    cohere.enqueue(Reply(finish_reason="ERROR"), Reply(text="recovered"))
    assert ask(client).choices[0].message.content == "recovered"
    assert len(cohere.requests) == 2
