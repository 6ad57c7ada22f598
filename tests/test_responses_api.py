"""POST /v1/responses with the official openai SDK: answers, conversations across providers,
function tools, structured output, reasoning, refusals, and one usage record per request."""

import json
from decimal import Decimal

import openai
import pytest
from pydantic import BaseModel

from billing.models import Plan
from conversations.models import StoredResponse
from tests.conftest import serve_provider_from, wait_for
from tests.fakes import anthropic_upstream, tavily_search
from tests.fakes.anthropic_upstream import SIGNATURE
from tests.fakes.openai_upstream import DEFAULT_REPLY, Reply
from usage.models import UsageRecord

GPT = "openai/gpt-4o-mini"
CLAUDE = "anthropic/claude-sonnet-4-5"
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"], "additionalProperties": False}, "strict": True}


def record_of(tenant, response_id: str) -> UsageRecord:
    request_id = f"req_{response_id.removeprefix('resp_')}"
    return wait_for(lambda: UsageRecord.objects.filter(tenant=tenant, request_id=request_id).first(),
                    what="the usage record")


def hidden_from(outsider, response_id: str) -> None:
    """Another tenant's key never sees the response."""
    with pytest.raises(openai.NotFoundError):
        outsider.responses.retrieve(response_id)


def streamed(client, **kwargs):
    """A streamed response's events, and the response of its terminal event."""
    events = list(client.responses.create(stream=True, **kwargs))
    return events, events[-1].response


def create(client, streaming: bool, **kwargs):
    return streamed(client, **kwargs)[1] if streaming else client.responses.create(**kwargs)


def test_a_string_input_is_answered_with_a_message_usage_and_one_record(client, fake_openai, tenant, other_client):
    response = client.responses.create(model=GPT, input="Say hello", instructions="Be brief.", max_output_tokens=50,
                                       temperature=0.2, metadata={"ticket": "42"}, user="user-7")
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == GPT
    assert response.output_text == DEFAULT_REPLY
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith("msg_")
    assert (response.instructions, response.max_output_tokens, response.temperature) == ("Be brief.", 50, 0.2)
    assert response.metadata == {"ticket": "42"} and response.store is True
    assert fake_openai.requests[-1]["body"] == {
        "model": "gpt-4o-mini", "max_completion_tokens": 50, "temperature": 0.2, "user": "user-7",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}],
    }
    usage = response.usage
    # The fake counts a word per token and 3 per message: 2 + 2 + 6 in, 5 words out.
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (10, 5, 15)
    assert usage.input_tokens_details.cached_tokens == 0 and usage.output_tokens_details.reasoning_tokens == 0
    record = record_of(tenant, response.id)
    assert (record.model, record.provider, record.input_tokens, record.output_tokens) == (GPT, "openai", 10, 5)
    assert record.cost == Decimal("0.0000045")  # 10 x $0.15/M + 5 x $0.60/M
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1
    hidden_from(other_client, response.id)


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
def test_a_conversation_continues_by_previous_response_id_on_another_provider(client, fake_openai, claude, tenant,
                                                                               other_client, streaming):
    first = create(client, streaming, model=GPT, input="My name is Ada.", instructions="Be brief.")
    assert first.output_text == DEFAULT_REPLY
    second = create(client, streaming, model=CLAUDE, input="What is my name?", previous_response_id=first.id,
                    max_output_tokens=100)
    assert second.output_text == anthropic_upstream.DEFAULT_REPLY
    assert second.previous_response_id == first.id and second.model == CLAUDE
    # Claude gets the whole conversation in its own shape; the first turn's instructions stay there.
    sent = claude.bodies[-1]
    assert "system" not in sent
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "My name is Ada."}]},
        {"role": "assistant", "content": [{"type": "text", "text": DEFAULT_REPLY}]},
        {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
    ]
    records = {record.model: record for record in UsageRecord.objects.filter(tenant=tenant)}
    assert set(records) == {GPT, CLAUDE}
    assert records[CLAUDE].input_tokens == second.usage.input_tokens > 0
    assert records[CLAUDE].output_tokens == second.usage.output_tokens == 5
    assert all(record.streamed == streaming for record in records.values())
    # Another tenant cannot continue it.
    with pytest.raises(openai.NotFoundError) as refused:
        other_client.responses.create(model=GPT, input="and mine?", previous_response_id=second.id)
    assert refused.value.body["param"] == "previous_response_id"


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
def test_function_calls_come_back_as_items_and_their_outputs_continue_the_loop(client, other_client, fake_openai,
                                                                               tenant, streaming):
    fake_openai.enqueue(Reply(tool_call=("get_weather", '{"city": "Paris"}')))
    first = create(client, streaming, model=GPT, input="Weather in Paris?", tools=[WEATHER_TOOL],
                   tool_choice="auto")
    [call] = first.output
    assert call.type == "function_call" and call.status == "completed"
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_1", "get_weather", {"city": "Paris"})
    assert fake_openai.requests[-1]["body"]["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_TOOL["parameters"],
        "strict": True}}]
    assert fake_openai.requests[-1]["body"]["tool_choice"] == "auto"
    second = create(client, streaming, model=GPT, previous_response_id=first.id, tools=[WEATHER_TOOL],
                    input=[{"type": "function_call_output", "call_id": "call_1", "output": "18C and sunny"}])
    assert second.output_text == DEFAULT_REPLY
    assert fake_openai.requests[-1]["body"]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "content": "18C and sunny", "tool_call_id": "call_1"},
    ]
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2
    hidden_from(other_client, second.id)


def test_without_storage_the_client_sends_the_items_back_itself(client, fake_openai, tenant, other_tenant):
    fake_openai.enqueue(Reply(tool_call=("get_weather", '{"city": "Oslo"}')))
    first = client.responses.create(model=GPT, input="Weather in Oslo?", tools=[WEATHER_TOOL], store=False)
    assert first.store is False
    history = [{"role": "user", "content": "Weather in Oslo?"}, *[item.to_dict() for item in first.output],
               {"type": "function_call_output", "call_id": "call_1", "output": "-3C"}]
    second = client.responses.create(model=GPT, input=history, tools=[WEATHER_TOOL], store=False)
    assert second.output_text == DEFAULT_REPLY
    assert fake_openai.requests[-1]["body"]["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "content": "-3C", "tool_call_id": "call_1"},
    ]
    assert not StoredResponse.objects.exists()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=GPT, input="again", previous_response_id=second.id)
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


class Weather(BaseModel):
    city: str
    celsius: int


def test_json_schema_output_reaches_the_model_and_parses(client, other_client, fake_openai):
    fake_openai.enqueue(Reply(text='{"city": "Paris", "celsius": 18}'))
    response = client.responses.parse(model=GPT, input="Weather in Paris as JSON", text_format=Weather)
    assert response.output_parsed == Weather(city="Paris", celsius=18)
    sent = fake_openai.requests[-1]["body"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Weather"
    assert sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["schema"]["properties"] == {"city": {"title": "City", "type": "string"},
                                                           "celsius": {"title": "Celsius", "type": "integer"}}
    assert response.text.format.type == "json_schema"
    hidden_from(other_client, response.id)


def test_images_in_the_input_reach_the_model(client, other_client, fake_openai):
    pixel = "data:image/png;base64,iVBORw0KGgo="
    response = client.responses.create(model=GPT, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": pixel, "detail": "low"}]}])
    assert fake_openai.requests[-1]["body"]["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": pixel, "detail": "low"}}]}]
    assert client.responses.input_items.list(response.id).data[0].content[1].image_url == pixel
    hidden_from(other_client, response.id)


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
def test_reasoning_is_a_summary_and_its_signature_goes_back_to_claude(client, other_client, claude, tenant,
                                                                     streaming):
    claude.enqueue(anthropic_upstream.Reply(thinking="The user wants a greeting.", text="Hello!",
                                            usage={"input_tokens": 20, "output_tokens": 30,
                                                   "output_tokens_details": {"reasoning_tokens": 12}}))
    first = create(client, streaming, model=CLAUDE, input="Greet me", reasoning={"effort": "medium"},
                   max_output_tokens=8000)
    reasoning, message = first.output
    assert reasoning.type == "reasoning"
    assert [part.text for part in reasoning.summary] == ["The user wants a greeting."]
    assert SIGNATURE in reasoning.encrypted_content  # the adapter's opaque signature, kept whole
    assert first.output_text == "Hello!" and first.reasoning.effort == "medium"
    assert claude.bodies[-1]["thinking"]["type"] == "enabled"
    assert first.usage.output_tokens == 30
    create(client, streaming, model=CLAUDE, input="Again", previous_response_id=first.id,
           reasoning={"effort": "medium"}, max_output_tokens=8000)
    # The fake refuses a thinking block whose signature or text changed.
    assert claude.bodies[-1]["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "The user wants a greeting.", "signature": SIGNATURE},
        {"type": "text", "text": "Hello!"}]
    assert UsageRecord.objects.filter(tenant=tenant, model=CLAUDE).count() == 2
    hidden_from(other_client, first.id)


def test_an_answer_cut_at_max_output_tokens_is_incomplete(client, other_client, fake_openai):
    fake_openai.enqueue(Reply(finish_reason="length"))
    response = client.responses.create(model=GPT, input="Tell me everything", max_output_tokens=5)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
    assert client.responses.retrieve(response.id).status == "incomplete"
    hidden_from(other_client, response.id)


@pytest.mark.parametrize(("kwargs", "param", "words"), [
    ({"input": "hi", "top_k": 3}, "top_k", "Unrecognized request argument"),
    ({}, "input", "'input' is required"),
    ({"input": [{"type": "message", "role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]},
     "input[0].content[0].type", "files are not supported"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]", "input[0]: no stored item 'msg_1'"),
    # A tool the gateway cannot run is dropped (tests/test_responses_codex_fields.py) unless the model is
    # made to call it.
    ({"input": "hi", "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}],
      "tool_choice": {"type": "file_search"}}, "tool_choice", "a tool the gateway cannot run"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name", "must be"),
    ({"input": "hi", "truncation": "auto"}, "truncation", "never drops"),
    ({"input": "hi", "background": True}, "background", "not supported"),
    ({"input": "hi", "conversation": "conv_1"}, "conversation", "previous_response_id"),
    ({"input": "hi", "reasoning": {"effort": "huge"}}, "reasoning.effort", "must be one of"),
])
def test_bad_requests_are_refused_naming_the_field(client, fake_openai, tenant, kwargs, param, words):
    extra = {key: kwargs.pop(key) for key in ("top_k",) if key in kwargs}
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=GPT, extra_body=extra or None, **kwargs)
    assert refused.value.body["param"] == param
    assert words in refused.value.body["message"]
    assert not fake_openai.requests and not UsageRecord.objects.filter(tenant=tenant).exists()


def test_an_unknown_previous_response_is_404_and_costs_nothing(client, fake_openai, tenant):
    with pytest.raises(openai.NotFoundError) as refused:
        client.responses.create(model=GPT, input="hi", previous_response_id="resp_nope")
    assert "resp_nope" in refused.value.body["message"]
    assert not fake_openai.requests and not UsageRecord.objects.filter(tenant=tenant).exists()


@pytest.fixture(scope="module")
def fake_tavily():
    fake = tavily_search.FakeTavily().start()
    yield fake
    fake.stop()


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
def test_the_web_search_tool_grounds_the_answer_with_url_citations(client, other_client, fake_openai, fake_tavily,
                                                                    tenant, streaming):
    plan = Plan.objects.get(slug="pro")
    if "search" not in plan.allowed_capabilities:
        plan.allowed_capabilities = [*plan.allowed_capabilities, "search"]
        plan.save()
    fake_tavily.reset()
    serve_provider_from("tavily", fake_tavily.base_url, fake_tavily.api_key)
    answer = "Paris is the capital of France [1]."
    fake_openai.enqueue(Reply(text=answer))
    response = create(client, streaming, model=GPT, input="What is the capital of France?",
                      tools=[{"type": "web_search", "search_context_size": "low",
                              "user_location": {"type": "approximate", "country": "FR"}}])
    assert response.output_text == answer
    search, message = response.output
    assert (search.type, search.status, search.action.type) == ("web_search_call", "completed", "search")
    assert search.action.query == "What is the capital of France?"
    assert [source.url for source in search.action.sources] == [url for _, url, _ in tavily_search.DEFAULT_HITS[:3]]
    [annotation] = message.content[0].annotations
    assert annotation.type == "url_citation" and annotation.url == "https://en.wikipedia.org/wiki/Paris"
    assert answer[annotation.start_index:annotation.end_index] == "[1]"
    assert fake_tavily.requests[-1]["body"]["query"] == "What is the capital of France?"
    assert "tools" not in fake_openai.requests[-1]["body"]
    assert response.tools[0].type == "web_search"
    assert record_of(tenant, response.id).web_searches == 1
    hidden_from(other_client, response.id)
