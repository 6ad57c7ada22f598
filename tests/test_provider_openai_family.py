"""The OpenAI-compatible family: one adapter, each provider's declared quirks, same client code.

The fake upstream speaks Chat Completions with the deviations recorded for these providers in
WIRE_FORMATS.md 8b (usage on the finish chunk or in x_groq, reasoning fields, Mistral's
content arrays, MiniMax's <think> tags, Perplexity's citations).
"""

from decimal import Decimal

import openai
import pytest

from providers import router
from providers.catalog_seed import read_catalog, seed_catalog
from providers.models import Provider
from tests.conftest import serve_provider_from
from tests.fakes.openai_upstream import API_KEY, FakeOpenAI, Reply
from usage.models import UsageRecord

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def serve_from_fake(catalog, fake_openai):
    """serve_from_fake("groq"): that provider, enabled, pointed at the fake OpenAI upstream."""

    def point(slug: str, fake: FakeOpenAI = fake_openai) -> None:
        serve_provider_from(slug, fake.base_url)

    return point


@pytest.mark.parametrize(("model", "upstream", "max_tokens_field", "stream_options"), [
    ("groq/llama-3.3-70b-versatile", "llama-3.3-70b-versatile", "max_completion_tokens", True),
    ("together/meta-llama/Llama-3.3-70B-Instruct-Turbo", "meta-llama/Llama-3.3-70B-Instruct-Turbo",
     "max_completion_tokens", True),
    ("deepseek/deepseek-chat", "deepseek-chat", "max_tokens", True),
    ("mistral/mistral-small-latest", "mistral-small-latest", "max_tokens", False),
    ("perplexity/sonar", "sonar", "max_tokens", False),
    ("openrouter/anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5", "max_completion_tokens", True),
    ("zai/glm-4.6", "glm-4.6", "max_tokens", True),
])
def test_each_provider_is_reached_with_its_own_model_name_and_token_field(
        client, fake_openai, serve_from_fake, tenant, model, upstream, max_tokens_field, stream_options):
    serve_from_fake(model.split("/")[0])
    # Providers that take no stream_options report usage unasked, on the finish chunk.
    fake_openai.enqueue(Reply(usage_placement="separate" if stream_options else "finish_chunk"))
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=model, messages=HELLO, max_tokens=100, stream=True) if c.choices)
    assert text == "Hello from the fake upstream."
    sent = fake_openai.requests[-1]
    assert sent["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert sent["body"]["model"] == upstream
    assert sent["body"][max_tokens_field] == 100
    assert ("stream_options" in sent["body"]) is stream_options
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.model, record.provider, record.output_tokens) == (model, model.split("/")[0], 5)
    assert not record.usage_estimated


def test_deepseek_reasoning_usage_on_the_finish_chunk_and_cache_hits(client, fake_openai, serve_from_fake, tenant):
    serve_from_fake("deepseek")
    usage = {"prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300, "prompt_cache_hit_tokens": 800,
             "prompt_cache_miss_tokens": 200, "completion_tokens_details": {"reasoning_tokens": 120}}
    fake_openai.enqueue(Reply(text="4", reasoning="two and two", usage=usage, usage_placement="finish_chunk"))
    chunks = list(client.chat.completions.create(model="deepseek/deepseek-reasoner", messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}, reasoning_effort="high"))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in chunks if c.choices)
    assert reasoning == "two and two"
    assert chunks[-1].usage.prompt_tokens == 1000 and chunks[-1].usage.prompt_tokens_details.cached_tokens == 800
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.cached_tokens, record.reasoning_tokens) == (800, 120)
    # 200 x $0.28/M + 800 x $0.028/M + 300 x $0.42/M
    assert record.cost == Decimal("0.0002044")


def test_deepseek_gets_its_reasoning_back_in_the_next_turn(client, fake_openai, serve_from_fake):
    serve_from_fake("deepseek")
    client.chat.completions.create(model="deepseek/deepseek-reasoner", messages=[
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "two and two"},
        {"role": "user", "content": "and 3+3?"},
    ])
    assert fake_openai.requests[-1]["body"]["messages"][1]["reasoning_content"] == "two and two"


def test_openai_itself_is_not_sent_reasoning_back(client, fake_openai):
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=[
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4", "reasoning_content": "sum"},
        {"role": "user", "content": "ok"}])
    assert "reasoning_content" not in fake_openai.requests[-1]["body"]["messages"][1]


def test_groq_usage_in_x_groq_and_reasoning_field(client, fake_openai, serve_from_fake, tenant):
    serve_from_fake("groq")
    fake_openai.enqueue(Reply(text="ok then", reasoning="hmm", reasoning_shape="reasoning", usage_placement="x_groq"))
    chunks = list(client.chat.completions.create(model="groq/openai/gpt-oss-120b", messages=HELLO, stream=True))
    assert "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks) == "hmm"
    record = UsageRecord.objects.get(tenant=tenant)
    assert record.output_tokens == 2 and not record.usage_estimated


def test_mistral_thinking_content_arrays_become_reasoning(client, fake_openai, serve_from_fake, tenant):
    serve_from_fake("mistral")
    fake_openai.enqueue(
        Reply(text="Paris", reasoning="capital of France", reasoning_shape="mistral", usage_placement="finish_chunk"),
        Reply(text="Paris", reasoning="capital of France", reasoning_shape="mistral"),
    )
    chunks = list(client.chat.completions.create(model="mistral/magistral-medium-latest", messages=HELLO,
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Paris"
    assert "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                   for c in chunks) == "capital of France"
    assert not UsageRecord.objects.get(tenant=tenant).usage_estimated  # usage came on the finish chunk
    message = client.chat.completions.create(model="mistral/magistral-medium-latest", messages=HELLO).choices[0].message
    assert (message.content, message.model_extra["reasoning_content"]) == ("Paris", "capital of France")


def test_minimax_think_tags_are_split_from_the_answer(client, fake_openai, serve_from_fake):
    serve_from_fake("minimax")
    fake_openai.enqueue(Reply(text="Done.", reasoning="plan the steps", reasoning_shape="think_tags"),
                        Reply(text="Done.", reasoning="plan the steps", reasoning_shape="think_tags"))
    message = client.chat.completions.create(model="minimax/MiniMax-M2", messages=HELLO).choices[0].message
    assert message.content == "Done." and message.model_extra["reasoning_content"] == "plan the steps"
    chunks = list(client.chat.completions.create(model="minimax/MiniMax-M2", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Done."
    assert "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                   for c in chunks) == "plan the steps"


@pytest.mark.parametrize(("slug", "model", "effort", "expected"), [
    ("xiaomi", "xiaomi/mimo-v2-flash", "high", {"thinking": {"type": "enabled"}}),
    ("zai", "zai/glm-4.6", "none", {"thinking": {"type": "disabled"}}),
    ("dashscope", "dashscope/qwen-plus", "low", {"enable_thinking": True}),
])
def test_reasoning_effort_becomes_the_providers_thinking_switch(client, fake_openai, serve_from_fake, slug, model,
                                                                 effort, expected):
    serve_from_fake(slug)
    client.chat.completions.create(model=model, messages=HELLO, reasoning_effort=effort)
    sent = fake_openai.requests[-1]["body"]
    assert "reasoning_effort" not in sent
    assert {key: sent[key] for key in expected} == expected


def test_perplexity_citations_are_kept(client, fake_openai, serve_from_fake):
    serve_from_fake("perplexity")
    urls = ["https://example.org/a", "https://example.org/b"]
    fake_openai.enqueue(Reply(text="Sourced answer", citations=urls), Reply(text="Sourced answer", citations=urls))
    completion = client.chat.completions.create(model="perplexity/sonar", messages=HELLO)
    assert completion.model_extra["citations"] == urls
    chunks = list(client.chat.completions.create(model="perplexity/sonar", messages=HELLO, stream=True))
    assert [(c.choices[0].delta.model_extra or {}).get("citations") for c in chunks
            if (c.choices[0].delta.model_extra or {}).get("citations")] == [urls]


def test_feature_a_model_lacks_is_refused_before_any_call(client, fake_openai, serve_from_fake, tenant):
    serve_from_fake("perplexity")
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="perplexity/sonar", messages=HELLO, tools=[
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
    assert refused.value.body["code"] == "unsupported_feature"
    assert "'perplexity/sonar' (provider perplexity) does not support tools" in refused.value.body["message"]
    assert fake_openai.requests == []
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_local_server_needs_no_key_and_gets_chat_template_kwargs(client, catalog, monkeypatch):
    local = FakeOpenAI(api_key=None).start()
    try:
        monkeypatch.setenv("LOCAL_BASE_URL", local.base_url)
        seed_catalog(read_catalog(), {"LOCAL_BASE_URL": local.base_url})
        router.forget_catalog()
        answer = client.chat.completions.create(model="local/qwen3", messages=HELLO, reasoning_effort="medium")
        assert answer.choices[0].message.content == "Hello from the fake upstream."
        sent = local.requests[-1]
        assert "Authorization" not in sent["headers"]
        assert sent["body"]["chat_template_kwargs"] == {"enable_thinking": True}
    finally:
        local.stop()


def test_bootstrap_wants_a_base_url_for_a_provider_without_a_public_one(catalog):
    notes = seed_catalog(read_catalog(), {"LIQUID_API_KEY": "lq-1"})
    assert any("set LIQUID_BASE_URL" in note for note in notes)
    assert not Provider.objects.get(slug="liquid").enabled
