"""Moderation through OpenAI's /v1/moderations, called through the adapter interface against the fake
OpenAI upstream over real HTTP: a verdict per text, one for a multimodal input, OpenAI's category
names kept, the input counted locally (OpenAI reports none), and failures mapped to our errors.
Only a provider that declares OpenAI's moderations API says it can moderate."""

import pytest

from providers import errors
from providers.adapters.cohere.adapter import CohereAdapter
from providers.adapters.openai.azure import AzureOpenAIAdapter
from providers.adapters.openai.compatible import OpenAICompatibleAdapter
from providers.embedding_types import ModerationRequest
from providers.tokenizer import TOKENS_PER_IMAGE, count_text
from providers.types import ImagePart, Target, TextPart
from tests.conftest import run_adapter_call as run
from tests.fakes.openai_embeddings import EmbeddingReply
from tests.fakes.openai_upstream import API_KEY, Reply

ADAPTER = OpenAICompatibleAdapter()


def moderate(fake, inputs, model: str = "omni-moderation-latest"):
    target = Target(provider="openai", upstream_model=model, base_url=fake.base_url, api_key=API_KEY,
                    quirks={"moderations": True})
    return run(ADAPTER.moderate(ModerationRequest(model=f"openai/{model}", inputs=inputs), target))


def test_each_text_gets_its_own_verdict_in_openais_shape(fake_openai):
    result = moderate(fake_openai, ["I will kill the process", "have a nice day"])
    flagged, calm = result.results
    assert flagged.flagged and flagged.categories["violence"] and flagged.category_scores["violence"] == 0.91
    assert flagged.category_applied_input_types["violence"] == ["text"]
    assert not calm.flagged and set(calm.categories) >= {"self-harm/intent", "violence/graphic", "illicit/violent"}
    assert result.usage.input_tokens == count_text("I will kill the process") + count_text("have a nice day")
    assert result.usage_estimated and result.id.startswith("modr-") and result.upstream_model == "omni-moderation-latest"
    assert fake_openai.requests[-1]["body"] == {"model": "omni-moderation-latest",
                                                "input": ["I will kill the process", "have a nice day"]}


def test_text_and_image_parts_are_one_input_with_one_verdict(fake_openai):
    url = "https://example.com/gore.png"
    result = moderate(fake_openai, [TextPart("a caption"), ImagePart(url)])
    assert len(result.results) == 1
    verdict = result.results[0]
    assert verdict.flagged and verdict.categories["violence/graphic"]
    assert verdict.category_applied_input_types["violence/graphic"] == ["image"]
    assert result.usage.input_tokens == count_text("a caption") + TOKENS_PER_IMAGE
    assert fake_openai.requests[-1]["body"]["input"] == [{"type": "text", "text": "a caption"},
                                                         {"type": "image_url", "image_url": {"url": url}}]


def test_text_moderation_models_answer_without_applied_input_types(fake_openai):
    result = moderate(fake_openai, ["hello"], model="text-moderation-latest")
    assert result.results[0].category_applied_input_types == {}
    with pytest.raises(errors.ProviderBadRequest, match="image inputs"):
        moderate(fake_openai, [ImagePart("https://example.com/a.png")], model="text-moderation-latest")


@pytest.mark.parametrize(("reply", "error"), [
    (Reply(status=429, error_type="requests", error_message="Rate limit reached"), errors.ProviderRateLimited),
    (Reply(status=500, error_type="server_error", error_message="boom"), errors.ProviderUnavailable),
    (EmbeddingReply(raw_body='{"id": "modr-1", "results": []}'), errors.ProviderMalformed),
    (EmbeddingReply(raw_body='{"id": "modr-1", "results": [{"categories": {}}, {"flagged": true}]}'),
     errors.ProviderMalformed),
])
def test_moderation_failures_become_the_gateways_errors(fake_openai, reply, error):
    fake_openai.enqueue(reply)
    with pytest.raises(error):
        moderate(fake_openai, ["one", "two"])


def test_only_a_provider_declaring_openais_moderations_can_moderate():
    openai = Target(provider="openai", upstream_model="m", base_url="http://127.0.0.1:9", api_key="k",
                    quirks={"moderations": True})
    groq = Target(provider="groq", upstream_model="m", base_url="http://127.0.0.1:9", api_key="k")
    assert ADAPTER.can_moderate(openai) and not ADAPTER.can_moderate(groq)
    assert not AzureOpenAIAdapter().can_moderate(openai) and not CohereAdapter().can_moderate(openai)
    assert ADAPTER.can_embed(groq) and AzureOpenAIAdapter().can_embed(groq) and CohereAdapter().can_embed(groq)
