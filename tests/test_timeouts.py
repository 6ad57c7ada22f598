"""A provider that is slow to start, or goes silent mid-stream, is timed out by the phase it is in."""

import threading

import openai
import pytest

from providers.models import Provider
from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def impatient(catalog, settings):
    settings.UPSTREAM_MAX_RETRIES = 0

    def set_limits(**limits):
        Provider.objects.filter(slug="openai").update(**limits)

    return set_limits


def test_stream_that_does_not_start_in_time_is_a_504_timeout(client, fake_openai, impatient, tenant):
    impatient(first_byte_timeout=0.2, read_timeout=5)
    fake_openai.enqueue(Reply(text="too late", chunk_delay=1.0))
    with pytest.raises(openai.APIStatusError) as caught:
        list(client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO, stream=True))
    assert caught.value.status_code == 504
    assert "silent for over 0.2s to start its answer" in caught.value.body["message"]
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.ending, record.http_status, record.output_tokens) == ("timeout", 504, 0)


def test_stream_that_goes_silent_between_chunks_ends_with_an_error_event(client, fake_openai, impatient, tenant):
    impatient(first_byte_timeout=5, read_timeout=0.2)
    fake_openai.enqueue(Reply(text="one two", chunk_delay=0.4))
    received = []
    with pytest.raises(openai.APIError, match="between two chunks"):
        for chunk in client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO, stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "one"
    record = UsageRecord.objects.get(tenant=tenant)
    assert record.ending == "timeout" and record.output_tokens > 0  # what was produced is billed


def test_a_slow_non_streamed_answer_within_the_first_byte_limit_is_fine(client, fake_openai, impatient):
    impatient(first_byte_timeout=5, read_timeout=0.1)  # the between-chunks limit does not apply
    fake_openai.enqueue(Reply(text="worth the wait", hold=True))
    threading.Timer(0.3, fake_openai.release).start()  # answers after longer than read_timeout
    answer = client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    assert answer.choices[0].message.content == "worth the wait"


def test_a_stream_longer_than_the_between_chunks_limit_is_fine_while_each_chunk_is_in_time(
        client, fake_openai, impatient, tenant):
    """The limit is per gap, not per stream: one timer serves all of an attempt's reads
    (providers/silence.py) and must move with each chunk."""
    impatient(first_byte_timeout=1.0, read_timeout=0.5)
    text = "one two three four five six seven eight"
    fake_openai.enqueue(Reply(text=text, chunk_delay=0.15))  # 1.2 s in all, past both limits
    received = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=HELLO, stream=True) if chunk.choices)
    assert received == text
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.ending, record.http_status) == ("completed", 200)
