"""Streamed /v1/responses as the openai SDK parses them: the event sequence, numbered; tool calls
and reasoning summaries; failures as response.failed; a client leaving; stored streams replayed."""

import json

import httpx
import openai
import pytest

from conversations.models import StoredResponse
from tests.conftest import wait_for
from tests.fakes import anthropic_upstream
from tests.fakes.openai_upstream import DEFAULT_REPLY, Reply
from usage.models import UsageRecord

GPT = "openai/gpt-4o-mini"
CLAUDE = "anthropic/claude-sonnet-4-5"
TEXT_EVENTS = [
    "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    *["response.output_text.delta"] * 5,  # a word per delta: "Hello from the fake upstream."
    "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
]


def hidden_from(outsider, response_id: str) -> None:
    """Another tenant's key never sees the response."""
    with pytest.raises(openai.NotFoundError):
        outsider.responses.retrieve(response_id)


def test_a_text_answer_streams_as_the_sdk_expects(client, other_client, fake_openai, tenant):
    events = list(client.responses.create(model=GPT, input="Say hello", stream=True))
    assert [event.type for event in events] == TEXT_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    created, completed = events[0].response, events[-1].response
    assert created.status == "in_progress" and created.output == [] and created.usage is None
    assert created.id == completed.id
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == DEFAULT_REPLY
    item_ids = {e.item_id for e in events if hasattr(e, "item_id")}
    assert item_ids == {completed.output[0].id}
    assert completed.status == "completed" and completed.output_text == DEFAULT_REPLY
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.streamed and (record.input_tokens, record.output_tokens) == (
        completed.usage.input_tokens, completed.usage.output_tokens) == (5, 5)
    # Stored before the terminal event left: readable at once.
    assert client.responses.retrieve(completed.id).output_text == DEFAULT_REPLY
    hidden_from(other_client, completed.id)


def test_the_sdk_stream_helper_puts_the_response_together(client, other_client, fake_openai):
    with client.responses.stream(model=GPT, input="Say hello") as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == DEFAULT_REPLY == final.output_text
    hidden_from(other_client, final.id)


def test_a_streamed_function_call_sends_its_arguments_in_pieces(client, other_client, fake_openai):
    fake_openai.enqueue(Reply(tool_call=("get_weather", '{"city": "Paris"}')))
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    with client.responses.stream(model=GPT, input="Weather?", tools=[tool]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                     "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta") == \
        '{"city": "Paris"}'
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert (done.name, done.arguments) == ("get_weather", '{"city": "Paris"}')
    [call] = final.output
    assert (call.type, call.call_id, call.name, call.status) == ("function_call", "call_1", "get_weather", "completed")
    assert json.loads(call.arguments) == {"city": "Paris"}
    hidden_from(other_client, final.id)


def test_reasoning_streams_as_summary_events_before_the_text(client, other_client, claude):
    claude.enqueue(anthropic_upstream.Reply(thinking="Greeting wanted, keep it short.", text="Hello there!"))
    with client.responses.stream(model=CLAUDE, input="Greet me", reasoning={"effort": "low"},
                                 max_output_tokens=4096) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.reasoning_summary_part.added"]
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summary == "Greeting wanted, keep it short."
    assert kinds.index("response.reasoning_summary_part.done") < kinds.index("response.output_text.delta")
    reasoning, message = final.output
    assert reasoning.summary[0].text == summary and anthropic_upstream.SIGNATURE in reasoning.encrypted_content
    assert message.content[0].text == "Hello there!"
    hidden_from(other_client, final.id)


def test_a_provider_failing_mid_stream_ends_it_with_response_failed(client, fake_openai, tenant, other_tenant):
    fake_openai.enqueue(Reply(text="one two three four", stream_error_after=2))
    events = list(client.responses.create(model=GPT, input="count", stream=True))
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "one two"
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.outcome == "error" and UsageRecord.objects.filter(tenant=tenant).count() == 1
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(failed.id)


def test_a_client_leaving_mid_stream_is_billed_once_and_nothing_is_stored(gateway_url, api_key, fake_openai,
                                                                          tenant, other_tenant):
    fake_openai.enqueue(Reply(text=" ".join(f"word{n}" for n in range(50)), chunk_delay=0.1))
    body = {"model": GPT, "input": "talk", "stream": True}
    with httpx.stream("POST", f"{gateway_url}/v1/responses", json=body,
                      headers={"Authorization": f"Bearer {api_key}"}) as response:
        deltas = 0
        for line in response.iter_lines():
            deltas += line == "event: response.output_text.delta"
            if deltas == 3:
                break
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.ending == "client_gone" and 1 <= record.output_tokens < 50
    wait_for(lambda: fake_openai.abandoned_streams == 1, what="the upstream stream to be closed")
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
    assert not StoredResponse.objects.exists()


def test_a_stored_response_replays_as_its_stream(client, fake_openai, other_client):
    live = list(client.responses.create(model=GPT, input="Say hello", stream=True))
    response_id = live[-1].response.id
    replayed = list(client.responses.retrieve(response_id, stream=True))
    assert [event.type for event in replayed] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert replayed[4].delta == DEFAULT_REPLY
    assert replayed[-1].response.model_dump() == live[-1].response.model_dump()
    later = list(client.responses.retrieve(response_id, stream=True, starting_after=6))
    assert [event.sequence_number for event in later] == [7, 8]
    with pytest.raises(openai.NotFoundError):
        other_client.responses.retrieve(response_id, stream=True)
