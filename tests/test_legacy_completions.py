"""Legacy completions (POST /v1/completions) called with the official SDK's ``completions.create``.
Served by a chat model: the prompt reaches the fake OpenAI upstream as one user message of a chat
request, and the answer comes back as text_completion objects, whole or streamed, billed as chat.
Served by a text completion model: the request reaches the fake's own /v1/completions as it came."""

import json
from decimal import Decimal

import openai
import pytest

from gateway.cache_settings import update_cache_settings
from tests.conftest import wait_for
from tests.fakes.openai_upstream import DEFAULT_REPLY
from usage.models import UsageRecord

MILLION = Decimal(1_000_000)
PROMPT_TOKENS = 2 + 3  # the fake's count: the prompt's words and 3 per message
REPLY_TOKENS = len(DEFAULT_REPLY.split())


def chat_requests(fake_openai) -> list[dict]:
    return [r for r in fake_openai.requests if "messages" in r.get("body", {})]


def record_of(raw) -> UsageRecord:
    return wait_for(lambda: UsageRecord.objects.filter(request_id=raw.headers["x-tollgate-request-id"]).first(),
                    what="the usage record")


def test_a_prompt_is_completed_by_a_chat_model_and_billed_as_chat(client, fake_openai, tenant, other_tenant):
    raw = client.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", prompt="Say hello", temperature=0.3, top_p=0.9, stop=["\n"], seed=7,
        user="end-user-1", presence_penalty=0.5, frequency_penalty=0.25)
    completion = raw.parse()

    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.model == "openai/gpt-4o-mini"
    choice = completion.choices[0]
    assert (choice.text, choice.index, choice.logprobs, choice.finish_reason) == (DEFAULT_REPLY, 0, None, "stop")
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (PROMPT_TOKENS, REPLY_TOKENS)
    # The upstream got a chat request: the prompt as one user message, max_tokens the legacy default 16.
    [sent] = chat_requests(fake_openai)
    assert sent["body"] == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}],
                            "max_completion_tokens": 16, "temperature": 0.3, "top_p": 0.9, "stop": ["\n"],
                            "seed": 7, "user": "end-user-1", "frequency_penalty": 0.25, "presence_penalty": 0.5}

    record = record_of(raw)
    assert (record.tenant_id, record.model, record.capability, record.streamed) == (
        tenant.pk, "openai/gpt-4o-mini", "chat", False)
    assert (record.input_tokens, record.output_tokens) == (PROMPT_TOKENS, REPLY_TOKENS)
    assert record.end_user == "end-user-1"  # the request's user, on its record
    assert record.cost == (PROMPT_TOKENS * Decimal("0.15") + REPLY_TOKENS * Decimal("0.60")) / MILLION
    assert Decimal(raw.headers["x-tollgate-cost"]) == record.cost
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_a_streamed_completion_is_text_completion_chunks_then_the_usage_chunk(client, fake_openai, tenant):
    stream = client.completions.create(model="openai/gpt-4o-mini", prompt=["Say hello"], max_tokens=40,
                                       stream=True, stream_options={"include_usage": True})
    chunks = list(stream)

    assert {chunk.object for chunk in chunks} == {"text_completion"}
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].id.startswith("cmpl-")
    texts = [chunk.choices[0].text for chunk in chunks if chunk.choices]
    assert "".join(texts) == DEFAULT_REPLY
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == PROMPT_TOKENS + REPLY_TOKENS
    assert all(chunk.usage is None for chunk in chunks[:-1])
    [sent] = chat_requests(fake_openai)
    assert (sent["body"]["stream"], sent["body"]["max_completion_tokens"]) == (True, 40)

    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.streamed, record.input_tokens, record.output_tokens) == (True, PROMPT_TOKENS, REPLY_TOKENS)


def test_a_stream_is_data_only_server_sent_events_ending_with_done(http, fake_openai, tenant):
    with http.stream("POST", "/completions", json={"model": "openai/gpt-4o-mini", "prompt": "hi",
                                                   "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]

    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all("usage" not in event for event in events)  # not asked for: no usage key at all
    assert events[-1]["choices"] == [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]


@pytest.mark.parametrize(("arguments", "param", "said"), [
    ({"echo": True}, "echo", "'echo' cannot be honoured"),
    ({"suffix": "}"}, "suffix", "'suffix' cannot be honoured: inserting text before a suffix"),
    ({"logprobs": 2}, "logprobs", "'logprobs' cannot be honoured"),
    ({"best_of": 3}, "best_of", "'best_of' cannot be honoured"),
    ({"n": 2}, "n", "'n' must be 1"),
    ({"prompt": ["one", "two"]}, "prompt", "'prompt' has 2 prompts"),
    ({"prompt": [1734, 318]}, "prompt", "token arrays cannot be translated to chat"),
    ({"prompt": ""}, "prompt", "'prompt' is empty"),
])
def test_what_chat_cannot_honour_is_refused_naming_the_field(client, fake_openai, tenant, arguments, param, said):
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(**{"model": "openai/gpt-4o-mini", "prompt": "Say hello", **arguments})
    assert refused.value.status_code == 400
    assert refused.value.body["param"] == param
    assert said in refused.value.message
    assert not chat_requests(fake_openai)
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_neutral_values_of_the_untranslatable_arguments_are_accepted(client, fake_openai):
    completion = client.completions.create(model="openai/gpt-4o-mini", prompt="Say hello", echo=False, suffix="",
                                           best_of=1, n=1, max_tokens=5)
    assert completion.choices[0].text == DEFAULT_REPLY
    assert chat_requests(fake_openai)[0]["body"]["max_completion_tokens"] == 5


def test_an_operator_who_turns_the_translation_off_gets_openais_404(client, fake_openai, tenant, settings):
    settings.LEGACY_COMPLETIONS_AS_CHAT = False
    with pytest.raises(openai.NotFoundError) as refused:
        client.completions.create(model="openai/gpt-4o-mini", prompt="Say hello")
    assert "/v1/chat/completions" in refused.value.message
    assert "LEGACY_COMPLETIONS_AS_CHAT" in refused.value.message
    assert not chat_requests(fake_openai)
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


# --- a text completion model: the request sent on as it came, to the provider's own /completions ---

INSTRUCT = "openai/gpt-3.5-turbo-instruct"


def completion_requests(fake_openai) -> list[dict]:
    return [r for r in fake_openai.requests if "prompt" in r.get("body", {})]


def test_a_text_completion_model_gets_the_request_natively_with_what_chat_cannot_honour(client, fake_openai,
                                                                                          tenant):
    raw = client.completions.with_raw_response.create(
        model=INSTRUCT, prompt="def add(a, b):", suffix="\nprint(add(1, 2))", echo=True, logprobs=2,
        max_tokens=30, temperature=0, stop=["\n\n"], user="end-user-2")
    completion = raw.parse()

    [sent] = completion_requests(fake_openai)
    assert sent["body"] == {"model": "gpt-3.5-turbo-instruct", "prompt": "def add(a, b):",
                            "suffix": "\nprint(add(1, 2))", "echo": True, "logprobs": 2, "max_tokens": 30,
                            "temperature": 0, "stop": ["\n\n"], "user": "end-user-2"}
    assert not chat_requests(fake_openai)
    choice = completion.choices[0]
    assert choice.text == "def add(a, b): " + DEFAULT_REPLY  # echo: the provider's own, passed on
    assert choice.logprobs.tokens[:2] == ["def", " add(a,"] and choice.logprobs.text_offset[:2] == [0, 3]
    assert completion.model == INSTRUCT and completion.object == "text_completion"

    record = record_of(raw)
    prompt_tokens, reply_tokens = 3 + 2, REPLY_TOKENS  # the fake's count: the prompt's and the suffix's words
    assert (record.model, record.capability, record.input_tokens, record.output_tokens) == (
        INSTRUCT, "completion", prompt_tokens, reply_tokens)
    assert record.cost == (prompt_tokens * Decimal("1.50") + reply_tokens * Decimal("2.00")) / MILLION
    assert record.end_user == "end-user-2"


def test_a_native_stream_carries_each_pieces_logprobs_and_token_id_prompts_go_through(client, fake_openai, tenant):
    stream = client.completions.create(model=INSTRUCT, prompt=[[1734, 318, 257]], logprobs=0, stream=True,
                                       stream_options={"include_usage": True})
    chunks = list(stream)

    [sent] = completion_requests(fake_openai)
    assert sent["body"]["prompt"] == [1734, 318, 257] and sent["body"]["stream"] is True
    texts = [chunk.choices[0] for chunk in chunks if chunk.choices and chunk.choices[0].text]
    assert "".join(choice.text for choice in texts) == DEFAULT_REPLY
    assert [choice.logprobs.tokens for choice in texts] == [[choice.text] for choice in texts]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == REPLY_TOKENS
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.streamed, record.input_tokens, record.output_tokens) == (True, 3, REPLY_TOKENS)


def test_max_tokens_zero_scores_the_prompt_on_a_text_model_and_is_refused_for_chat(client, fake_openai, tenant):
    scored = client.completions.create(model=INSTRUCT, prompt="tides follow the moon", max_tokens=0, echo=True,
                                       logprobs=1)
    choice = scored.choices[0]
    assert choice.text == "tides follow the moon" and choice.logprobs.tokens == ["tides", " follow", " the", " moon"]
    assert scored.usage.completion_tokens == 0
    assert completion_requests(fake_openai)[0]["body"]["max_tokens"] == 0

    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model="openai/gpt-4o-mini", prompt="tides follow the moon", max_tokens=0)
    assert refused.value.body["param"] == "max_tokens" and "only a text completion model" in refused.value.message
    assert not chat_requests(fake_openai)


def test_a_cached_completion_keeps_its_logprobs_whole_and_streamed(client, fake_openai, tenant):
    update_cache_settings(tenant, enabled=True)
    ask = {"model": INSTRUCT, "prompt": "Say hello", "logprobs": 1, "temperature": 0}
    live = "".join(choice.text for chunk in client.completions.create(**ask, stream=True) for choice in chunk.choices)
    raw = client.completions.with_raw_response.create(**ask)
    whole = raw.parse().choices[0]
    assert raw.headers["x-tollgate-cache"] == "hit" and len(completion_requests(fake_openai)) == 1
    assert whole.text == live == DEFAULT_REPLY
    assert "".join(whole.logprobs.tokens) == DEFAULT_REPLY and whole.logprobs.text_offset[0] == 0
    replayed = [choice for chunk in client.completions.create(**ask, stream=True) for choice in chunk.choices
                if choice.logprobs]
    assert [token for choice in replayed for token in choice.logprobs.tokens] == whole.logprobs.tokens


def test_best_of_is_reserved_for_every_candidate_and_refused_on_a_stream(client, fake_openai, tenant):
    completion = client.completions.create(model=INSTRUCT, prompt="Say hello", best_of=3, max_tokens=10)
    assert completion.usage.completion_tokens == 3 * REPLY_TOKENS  # every candidate, as the provider bills
    assert completion_requests(fake_openai)[0]["body"]["best_of"] == 3
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.output_tokens == 3 * REPLY_TOKENS
    assert record.reserved >= 3 * 10 * Decimal("2.00") / MILLION  # the reservation covered all three

    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model=INSTRUCT, prompt="Say hello", best_of=2, stream=True)
    assert refused.value.body["param"] == "best_of" and "cannot be streamed" in refused.value.message
    assert len(completion_requests(fake_openai)) == 1


@pytest.mark.parametrize(("arguments", "param", "said"), [
    ({"logprobs": 6}, "logprobs", "from 0 to 5"),
    ({"prompt": [1, "two"]}, "prompt", "token ids"),
    ({"best_of": 21}, "best_of", "at most 20"),
])
def test_native_arguments_out_of_range_are_refused_before_any_call(client, fake_openai, tenant, arguments, param,
                                                                    said):
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(**{"model": INSTRUCT, "prompt": "Say hello", **arguments})
    assert refused.value.body["param"] == param and said in refused.value.message
    assert not fake_openai.requests and not UsageRecord.objects.filter(tenant=tenant).exists()


def test_a_text_completion_model_is_not_served_at_chat_completions(client, fake_openai):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=INSTRUCT, messages=[{"role": "user", "content": "hi"}])
    assert "/v1/completions" in refused.value.message and refused.value.code == "wrong_endpoint"
    assert not fake_openai.requests
