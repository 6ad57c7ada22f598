"""A provider answering outside its own wire format is never the gateway's own 500, and an answer
it gave is never billed $0: usage that cannot be read is served and billed by estimate (flagged),
a body that is not the answer object is a 502 ``upstream_malformed``, a malformed stream event ends
the stream with an error naming the provider and bills what was streamed. Each admitted request
leaves exactly one usage record. For the OpenAI-compatible, Anthropic, Gemini and Cohere wires,
through the official openai SDK (and the anthropic SDK for Claude)."""

from dataclasses import dataclass

import anthropic
import openai
import pytest

from tests.fakes import anthropic_upstream, cohere_upstream, gemini_upstream, openai_upstream
from usage.models import UsageRecord

TEXT = "alpha beta gamma delta"


@dataclass(frozen=True)
class Wire:
    slug: str
    model: str
    fake: str  # the fixture of its fake upstream
    reply: type  # the fake's scripted Reply
    bad_usage: dict  # the fake's usage object with a count that is not a number
    body_without_answer: str  # a JSON object lacking what the answer is read from
    event_with_bad_field: str  # an SSE event missing, or mistyping, a field the adapter reads


WIRES = {
    "openai": Wire(
        "openai", "openai/gpt-4o-mini", "fake_openai", openai_upstream.Reply,
        {"prompt_tokens": "11x", "completion_tokens": 4, "total_tokens": 15},
        '{"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini"}',
        'data: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}'),
    "anthropic": Wire(
        "anthropic", "anthropic/claude-sonnet-4-5", "claude", anthropic_upstream.Reply,
        {"input_tokens": "11x", "output_tokens": 4},
        '{"id": "msg_1", "type": "message", "role": "assistant", "stop_reason": "end_turn"}',
        'event: content_block_delta\n'  # no index
        'data: {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "!"}}'),
    "gemini": Wire(
        "gemini", "gemini/gemini-2.5-flash", "gemini", gemini_upstream.Reply,
        {"promptTokenCount": "11x", "candidatesTokenCount": 4, "totalTokenCount": 15},
        '{"modelVersion": "gemini-2.5-flash", "responseId": "r1"}',
        'data: {"candidates": [{"content": {"role": "model", "parts": [{"text": 5}]}, "index": 0}]}'),
    "cohere": Wire(
        "cohere", "cohere/command-r-08-2024", "cohere", cohere_upstream.Reply,
        {"billed_units": {"input_tokens": "11x", "output_tokens": 4}},
        '{"id": "c1", "finish_reason": "COMPLETE"}',
        'data: {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": 5}}}}'),
}
SDK_ERRORS = (openai.APIError, anthropic.APIError)


@pytest.fixture(autouse=True)
def no_retries(settings):
    settings.UPSTREAM_MAX_RETRIES = 0  # one scripted reply is the whole story (no catalog fallbacks either)


@pytest.fixture(params=WIRES)
def wire(request) -> Wire:
    return WIRES[request.param]


@pytest.fixture
def fake(wire, request):
    return request.getfixturevalue(wire.fake)


@pytest.fixture
def ask(wire, client, claude_sdk_for, api_key):
    """ask(streamed, received=[]): the answer's text and its usage as the client was told, through
    the anthropic SDK for Claude and the openai SDK for the others; streamed text goes into
    ``received`` as it arrives, so a test still sees it when the SDK raises."""
    if wire.slug == "anthropic":
        return lambda streamed, received=None: ask_claude(claude_sdk_for(api_key), wire.model, streamed,
                                                          [] if received is None else received)
    return lambda streamed, received=None: ask_openai(client, wire.model, streamed,
                                                      [] if received is None else received)


def ask_openai(client: openai.OpenAI, model: str, streamed: bool, received: list[str]):
    messages = [{"role": "user", "content": "Say hello"}]
    if not streamed:
        completion = client.chat.completions.create(model=model, messages=messages, max_tokens=50)
        usage = completion.usage
        return completion.choices[0].message.content, (usage.prompt_tokens, usage.completion_tokens)
    usage = None
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=50, stream=True,
                                                stream_options={"include_usage": True}):
        received.extend(choice.delta.content or "" for choice in chunk.choices)
        usage = chunk.usage or usage
    return "".join(received), (usage.prompt_tokens, usage.completion_tokens)


def ask_claude(client: anthropic.Anthropic, model: str, streamed: bool, received: list[str]):
    messages = [{"role": "user", "content": "Say hello"}]
    if not streamed:
        message = client.messages.create(model=model, max_tokens=50, messages=messages)
        return message.content[0].text, (message.usage.input_tokens, message.usage.output_tokens)
    with client.messages.stream(model=model, max_tokens=50, messages=messages) as stream:
        received.extend(stream.text_stream)
        usage = stream.get_final_message().usage
    return "".join(received), (usage.input_tokens, usage.output_tokens)


def only_record(tenant) -> UsageRecord:
    records = list(UsageRecord.objects.filter(tenant=tenant))
    assert len(records) == 1, records
    return records[0]


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_usage_that_is_not_a_number_serves_the_answer_and_bills_the_estimate(
        wire, fake, ask, tenant, other_tenant, streamed):
    fake.enqueue(wire.reply(text=TEXT, usage=wire.bad_usage))
    text, told = ask(streamed)
    assert text == TEXT
    record = only_record(tenant)
    assert (record.outcome, record.http_status, record.usage_estimated) == ("ok", 200, True)
    assert record.input_tokens > 0 and record.output_tokens > 0 and record.cost > 0
    assert told == (record.input_tokens, record.output_tokens)  # the client is told the estimate it pays
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


@pytest.mark.parametrize("body", ["array", "string", "object without the answer"])
def test_a_body_that_is_not_the_answer_object_is_a_502_upstream_malformed(wire, fake, ask, tenant, other_tenant,
                                                                          body):
    raw = {"array": "[1, 2, 3]", "string": '"x"', "object without the answer": wire.body_without_answer}[body]
    fake.enqueue(wire.reply(raw_body=raw))
    with pytest.raises(SDK_ERRORS) as caught:
        ask(False)
    assert caught.value.status_code == 502
    assert f"{wire.slug} sent" in caught.value.message
    record = only_record(tenant)
    assert (record.outcome, record.http_status, record.error_type) == ("error", 502, "upstream_malformed")
    assert record.cost == 0 and not record.usage_estimated
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


@pytest.mark.parametrize("event", ["array", "string", "event with a bad field"])
def test_a_malformed_stream_event_ends_the_stream_with_an_error_naming_the_provider_and_bills_the_output(
        wire, fake, ask, tenant, other_tenant, event):
    raw = {"array": "data: [1,2,3]", "string": 'data: "x"', "event with a bad field": wire.event_with_bad_field}[event]
    fake.enqueue(wire.reply(text=TEXT, raw_event=raw, raw_event_after=2))
    received: list[str] = []
    with pytest.raises(SDK_ERRORS) as caught:
        ask(True, received)
    assert "".join(received) == "alpha beta"
    assert f"{wire.slug} sent" in str(caught.value)
    record = only_record(tenant)
    assert (record.outcome, record.ending, record.error_type) == ("error", "upstream_error", "upstream_stream_broken")
    assert record.usage_estimated and record.output_tokens > 0 and record.cost > 0
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_a_malformed_answer_before_any_output_is_retried(wire, fake, ask, tenant, other_tenant, settings, streamed):
    settings.UPSTREAM_MAX_RETRIES = 1
    fake.enqueue(wire.reply(raw_event="data: [1,2,3]", raw_event_after=0) if streamed
                 else wire.reply(raw_body="[1, 2, 3]"))
    text, _ = ask(streamed)
    assert text == wire.reply().text
    assert len(fake.requests) == 2
    record = only_record(tenant)
    assert record.outcome == "ok" and not record.usage_estimated
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
