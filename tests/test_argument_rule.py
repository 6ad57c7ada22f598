"""The argument rule on /v1/chat/completions, with the official openai SDK: every documented
argument is accepted; neutral values are dropped (the provider sees the request without them);
others are forwarded to providers that take them and refused with a 400 naming the model and the
argument, before any call and any usage record, where the model cannot honour them."""

import json

import openai
import pytest

from tests.conftest import serve_provider_from
from tests.fakes import gemini_upstream
from tests.fakes.openai_upstream import DEFAULT_REPLY, Reply
from usage.models import UsageRecord

GPT = "openai/gpt-4o-mini"
CLAUDE = "anthropic/claude-sonnet-4-5"
FLASH = "gemini/gemini-2.5-flash"
COMMAND = "cohere/command-r-08-2024"
GROQ = "groq/llama-3.3-70b-versatile"
HELLO = [{"role": "user", "content": "Say hello"}]
NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "logprobs": False, "top_logprobs": 0, "logit_bias": {},
           "verbosity": "medium", "modalities": ["text"], "prediction": None, "audio": None, "store": True,
           "metadata": {"run": "7"}, "service_tier": "auto", "prompt_cache_key": "k-1", "safety_identifier": "s-1",
           "parallel_tool_calls": True, "prompt_cache_retention": "24h"}
SAMPLING_KEYS = {"frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "logit_bias", "verbosity",
                 "modalities", "prediction", "audio"}
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def nothing_recorded(*tenants) -> None:
    for tenant in tenants:
        assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_neutral_values_are_accepted_and_the_provider_sees_the_request_without_them(
        client, fake_openai, tenant, other_tenant):
    plain = client.chat.completions.create(model=GPT, messages=HELLO)
    neutral = client.chat.completions.create(model=GPT, messages=HELLO, **NEUTRAL)
    assert neutral.choices[0].message.content == plain.choices[0].message.content == DEFAULT_REPLY
    assert neutral.choices[0].logprobs is None
    without, with_neutral = (request["body"] for request in fake_openai.requests)
    assert with_neutral == without and not SAMPLING_KEYS & set(with_neutral)
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2
    nothing_recorded(other_tenant)


def test_neutral_values_are_accepted_on_a_model_whose_provider_takes_none_of_them(client, claude, tenant):
    completion = client.chat.completions.create(model=CLAUDE, messages=HELLO, **NEUTRAL)
    assert completion.choices[0].message.content
    assert not {"frequency_penalty", "presence_penalty", "logprobs", "verbosity"} & set(claude.bodies[-1])
    assert UsageRecord.objects.filter(tenant=tenant, model=CLAUDE).count() == 1


def test_sampling_arguments_are_forwarded_to_openai_models_as_openai_names_them(client, fake_openai):
    prediction = {"type": "content", "content": "Hello from"}
    client.chat.completions.create(model=GPT, messages=HELLO, frequency_penalty=0.5, presence_penalty=-0.25,
                                   logit_bias={"50256": -100, "1000": 0}, verbosity="low", prediction=prediction)
    sent = fake_openai.requests[-1]["body"]
    assert (sent["frequency_penalty"], sent["presence_penalty"]) == (0.5, -0.25)
    assert sent["logit_bias"] == {"50256": -100}  # a zero bias is no bias
    assert (sent["verbosity"], sent["prediction"]) == ("low", prediction)


@pytest.mark.parametrize(("arguments", "param"), [
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"presence_penalty": -1}, "presence_penalty"),
    ({"logprobs": True, "top_logprobs": 3}, "logprobs"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"verbosity": "high"}, "verbosity"),
    ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, "modalities"),
    ({"prediction": {"type": "content", "content": "draft"}}, "prediction"),
])
def test_a_value_the_model_cannot_honour_is_a_400_naming_model_and_argument_before_any_call(
        client, claude, fake_openai, tenant, other_tenant, arguments, param):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=CLAUDE, messages=HELLO, **arguments)
    error = refused.value.body
    assert (error["param"], error["code"]) == (param, "unsupported_argument")
    assert CLAUDE in error["message"] and f"'{param}'" in error["message"]
    assert not claude.requests and not fake_openai.requests
    nothing_recorded(tenant, other_tenant)


def test_audio_output_is_refused_even_on_openai_models(client, fake_openai, tenant):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=GPT, messages=HELLO, modalities=["text", "audio"],
                                       audio={"voice": "alloy", "format": "wav"})
    assert refused.value.body["param"] == "modalities" and GPT in refused.value.body["message"]
    assert not fake_openai.requests
    nothing_recorded(tenant)


def test_logprobs_are_forwarded_and_reach_the_client(client, fake_openai, tenant, other_tenant):
    completion = client.chat.completions.create(model=GPT, messages=HELLO, logprobs=True, top_logprobs=2)
    sent = fake_openai.requests[-1]["body"]
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    tokens = completion.choices[0].logprobs.content
    assert "".join(token.token for token in tokens) == DEFAULT_REPLY
    assert tokens[0].logprob == -0.25 and tokens[0].bytes == list(b"Hello")
    assert [alt.token for alt in tokens[1].top_logprobs] == [" from", " alt1"]
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1
    nothing_recorded(other_tenant)


def test_streamed_logprobs_come_with_each_chunk(client, fake_openai):
    chunks = list(client.chat.completions.create(model=GPT, messages=HELLO, logprobs=True, stream=True))
    tokens = [token for chunk in chunks if chunk.choices and chunk.choices[0].logprobs
              for token in chunk.choices[0].logprobs.content]
    assert "".join(token.token for token in tokens) == DEFAULT_REPLY
    assert [token.logprob for token in tokens[:2]] == [-0.25, -0.5]
    assert fake_openai.requests[-1]["body"]["logprobs"] is True


@pytest.mark.parametrize("logprobs", [False, None])
def test_top_logprobs_without_logprobs_true_is_refused_as_openai_does(client, fake_openai, logprobs):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=GPT, messages=HELLO, top_logprobs=3,
                                       **({} if logprobs is None else {"logprobs": logprobs}))
    assert refused.value.body["param"] == "top_logprobs"
    assert not fake_openai.requests


def test_deprecated_functions_are_served_as_tools_and_answered_as_a_function_call(client, fake_openai, tenant):
    fake_openai.enqueue(Reply(tool_call=("get_weather", '{"city": "Paris"}')))
    completion = client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "Weather?"}],
                                                functions=[WEATHER], function_call={"name": "get_weather"})
    sent = fake_openai.requests[-1]["body"]
    assert sent["tools"] == [{"type": "function", "function": WEATHER}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert "functions" not in sent and "function_call" not in sent
    choice = completion.choices[0]
    assert choice.finish_reason == "function_call" and not choice.message.tool_calls
    assert (choice.message.function_call.name, json.loads(choice.message.function_call.arguments)) == (
        "get_weather", {"city": "Paris"})
    # The next turn, in the deprecated shape: the call and a "function" message with its result.
    client.chat.completions.create(model=GPT, functions=[WEATHER], messages=[
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"role": "function", "name": "get_weather", "content": "21C"}])
    assistant, result = fake_openai.requests[-1]["body"]["messages"][1:]
    [call] = assistant["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert result == {"role": "tool", "content": "21C", "name": "get_weather", "tool_call_id": call["id"]}
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2


def test_deprecated_functions_stream_a_function_call(client, fake_openai):
    fake_openai.enqueue(Reply(tool_call=("get_weather", '{"city": "Paris"}')))
    chunks = list(client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "Weather?"}],
                                                 functions=[WEATHER], stream=True))
    calls = [chunk.choices[0].delta.function_call for chunk in chunks
             if chunk.choices and chunk.choices[0].delta.function_call]
    assert calls[0].name == "get_weather"
    assert json.loads("".join(call.arguments for call in calls)) == {"city": "Paris"}
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "function_call"


def test_gemini_takes_penalties_and_logprobs_under_its_own_names(client, gemini, tenant, other_tenant):
    completion = client.chat.completions.create(model=FLASH, messages=HELLO, frequency_penalty=0.4,
                                                presence_penalty=0.2, logprobs=True, top_logprobs=2)
    config = gemini.requests[-1]["body"]["generationConfig"]
    assert (config["frequencyPenalty"], config["presencePenalty"]) == (0.4, 0.2)
    assert (config["responseLogprobs"], config["logprobs"]) == (True, 2)
    tokens = completion.choices[0].logprobs.content
    assert "".join(token.token for token in tokens) == gemini_upstream.DEFAULT_REPLY
    assert [alt.token for alt in tokens[0].top_logprobs] == ["Hello", " alt1"]
    assert UsageRecord.objects.filter(tenant=tenant, model=FLASH).count() == 1
    nothing_recorded(other_tenant)


def test_gemini_streams_logprobs_and_refuses_what_it_cannot_take(client, gemini, tenant):
    chunks = list(client.chat.completions.create(model=FLASH, messages=HELLO, logprobs=True, stream=True))
    tokens = [token for chunk in chunks if chunk.choices and chunk.choices[0].logprobs
              for token in chunk.choices[0].logprobs.content]
    assert "".join(token.token for token in tokens) == gemini_upstream.DEFAULT_REPLY
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=FLASH, messages=HELLO, logit_bias={"42": 5})
    assert refused.value.body["param"] == "logit_bias" and FLASH in refused.value.body["message"]
    assert len(gemini.requests) == 1
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1


def test_cohere_takes_the_penalties_and_refuses_logprobs(client, cohere):
    client.chat.completions.create(model=COMMAND, messages=HELLO, frequency_penalty=0.3, presence_penalty=0.1)
    sent = cohere.requests[-1]["body"]
    assert (sent["frequency_penalty"], sent["presence_penalty"]) == (0.3, 0.1)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=COMMAND, messages=HELLO, logprobs=True)
    assert refused.value.body["param"] == "logprobs" and len(cohere.requests) == 1


def test_a_provider_declared_not_to_take_an_argument_is_refused_for_it(client, fake_openai, catalog, tenant):
    serve_provider_from("groq", fake_openai.base_url)  # Groq's quirks: unsupported_arguments
    client.chat.completions.create(model=GROQ, messages=HELLO, frequency_penalty=0.5)
    assert fake_openai.requests[-1]["body"]["frequency_penalty"] == 0.5
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=GROQ, messages=HELLO, logprobs=True)
    assert refused.value.body["param"] == "logprobs" and GROQ in refused.value.body["message"]
    assert len(fake_openai.requests) == 1


def test_a_fallback_that_cannot_honour_the_arguments_is_skipped(client, fake_openai, claude, tenant, settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    fake_openai.enqueue(Reply(status=503, error_message="overloaded"))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=GPT, messages=HELLO, frequency_penalty=0.5,
                                       extra_body={"fallback_models": [CLAUDE]})
    assert len(fake_openai.requests) == 1 and not claude.requests  # Claude would have answered without it
    # Without the penalty, the same chain falls back to Claude.
    fake_openai.enqueue(Reply(status=503, error_message="overloaded"))
    completion = client.chat.completions.create(model=GPT, messages=HELLO, extra_body={"fallback_models": [CLAUDE]})
    assert completion.model == CLAUDE and len(claude.requests) == 1


def test_openai_stored_services_are_refused_naming_the_model_unless_null(client, fake_openai, tenant):
    client.chat.completions.create(model=GPT, messages=HELLO, extra_body={"moderation": None})
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=GPT, messages=HELLO,
                                       extra_body={"moderation": {"model": "omni-moderation-latest"}})
    assert refused.value.body["param"] == "moderation" and GPT in refused.value.body["message"]
    assert len(fake_openai.requests) == 1
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1
