"""A tenant calls /v1/chat/completions with the official openai SDK, streamed and not."""

from decimal import Decimal

from tests.fakes.openai_upstream import API_KEY, DEFAULT_REPLY, Reply
from usage.models import UsageRecord


def test_completion_through_openai_reaches_the_upstream_and_answers(client, fake_openai):
    completion = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}], max_tokens=50,
        temperature=0.2,
    )
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "openai/gpt-4o-mini"
    assert completion.usage.completion_tokens == 5
    assert completion.usage.prompt_tokens == 5
    sent = fake_openai.requests[-1]
    assert sent["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert sent["body"]["model"] == "gpt-4o-mini"
    assert sent["body"]["max_completion_tokens"] == 50
    assert sent["body"]["temperature"] == 0.2


def test_streamed_completion_gives_tokens_then_the_usage_chunk_last(client, fake_openai):
    fake_openai.enqueue(Reply(text="one two three four"))
    stream = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "count"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_stream_without_include_usage_has_no_usage_chunk_but_is_still_billed(client, fake_openai, tenant):
    stream = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
    )
    chunks = list(stream)
    assert all(c.choices for c in chunks)
    assert fake_openai.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    record = UsageRecord.objects.get(tenant=tenant)
    assert record.output_tokens == 5 and not record.usage_estimated
    assert record.cost > 0


def test_demo_echo_streams_the_last_user_message_word_by_word(client):
    stream = client.chat.completions.create(
        model="demo/echo",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "the quick brown fox"}],
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    words = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert words == ["the", " quick", " brown", " fox"]
    assert chunks[-1].usage.prompt_tokens == 6  # "be brief" + "the quick brown fox"
    assert chunks[-1].usage.completion_tokens == 4


def test_demo_echo_stops_at_max_tokens_with_finish_reason_length(client):
    completion = client.chat.completions.create(
        model="demo/echo", messages=[{"role": "user", "content": "a b c d e f"}], max_tokens=3,
    )
    assert completion.choices[0].message.content == "a b c"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3


def test_demo_echo_cost_is_visible_and_exact(client, tenant):
    client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "one two"}])
    record = UsageRecord.objects.get(tenant=tenant)
    # 2 input tokens at $0.10/M + 2 output tokens at $0.40/M
    assert record.cost == Decimal("0.0000010000")
