"""Embeddings through Gemini's and Cohere's own APIs, called through the adapter interface against
fakes of batchEmbedContents and /v2/embed over real HTTP: their per-call limits (100 requests, 96
texts) split and put back in order, the input-type hint in each one's words, Cohere's billed units,
Gemini's missing count counted locally, and their errors mapped to the gateway's."""

import pytest

from providers import errors
from providers.adapters.cohere.adapter import CohereAdapter
from providers.adapters.gemini.adapter import GeminiAdapter
from providers.embedding_types import EmbeddingRequest
from providers.tokenizer import count_inputs
from providers.types import Target
from tests.conftest import run_adapter_call as run
from tests.fakes import cohere_upstream, gemini_embeddings
from tests.fakes.cohere_embed import CohereEmbedReply
from tests.fakes.cohere_upstream import Reply as CohereReply
from tests.fakes.gemini_embeddings import FakeGeminiEmbeddings, GeminiEmbedReply
from tests.fakes.openai_embeddings import fake_vector


@pytest.fixture(scope="module")
def gemini_server():
    fake = FakeGeminiEmbeddings().start()
    yield fake
    fake.stop()


@pytest.fixture
def gemini(gemini_server):
    gemini_server.reset()
    return gemini_server


@pytest.fixture
def cohere(cohere_server):
    cohere_server.reset()
    return cohere_server


def gemini_embed(fake, inputs, model: str = "gemini-embedding-001", **fields):
    target = Target(provider="gemini", upstream_model=model, base_url=fake.base_url, api_key=gemini_embeddings.API_KEY)
    return run(GeminiAdapter().embed(EmbeddingRequest(model=f"gemini/{model}", inputs=inputs, **fields), target))


def cohere_embed(fake, inputs, model: str = "embed-v4.0", **fields):
    target = Target(provider="cohere", upstream_model=model, base_url=fake.base_url, api_key=cohere_upstream.API_KEY)
    return run(CohereAdapter().embed(EmbeddingRequest(model=f"cohere/{model}", inputs=inputs, **fields), target))


def test_gemini_embeds_a_batch_with_its_task_type_and_dimensionality(gemini):
    result = gemini_embed(gemini, ["how do tides work", "the moon pulls the sea"], input_type="query",
                          dimensions=64)
    assert result.vectors == [fake_vector("how do tides work", 64), fake_vector("the moon pulls the sea", 64)]
    call = gemini.calls()[-1]
    assert call["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert call["headers"]["x-goog-api-key"] == gemini_embeddings.API_KEY
    assert call["body"]["requests"][0] == {"model": "models/gemini-embedding-001", "taskType": "RETRIEVAL_QUERY",
                                           "content": {"parts": [{"text": "how do tides work"}]},
                                           "outputDimensionality": 64}


def test_gemini_reports_no_count_so_the_gateway_counts_and_flags_it(gemini):
    texts = ["one small text", "another one"]
    result = gemini_embed(gemini, texts, model="text-embedding-004")
    assert len(result.vectors[0]) == 768
    assert result.usage_estimated and result.usage.input_tokens == count_inputs(texts) > 0


def test_gemini_count_is_used_when_it_sends_one(gemini):
    gemini.enqueue(GeminiEmbedReply(usage_tokens=11))
    result = gemini_embed(gemini, ["a b c"])
    assert (result.usage.input_tokens, result.usage_estimated) == (11, False)


def test_gemini_batches_of_more_than_100_are_split_and_put_back_in_order(gemini):
    texts = [f"passage {n}" for n in range(250)]
    result = gemini_embed(gemini, texts, input_type="document", dimensions=8)
    assert [len(call["body"]["requests"]) for call in gemini.calls()] == [100, 100, 50]
    assert result.vectors == [fake_vector(text, 8) for text in texts]
    assert all(entry["taskType"] == "RETRIEVAL_DOCUMENT" for call in gemini.calls() for entry in call["body"]["requests"])


@pytest.mark.parametrize(("reply", "error"), [
    (GeminiEmbedReply(status=429, message="Resource has been exhausted"), errors.ProviderRateLimited),
    (GeminiEmbedReply(status=503, message="The model is overloaded"), errors.ProviderUnavailable),
    (GeminiEmbedReply(drop_last=True), errors.ProviderMalformed),
])
def test_gemini_failures_become_the_gateways_errors(gemini, reply, error):
    gemini.enqueue(reply)
    with pytest.raises(error):
        gemini_embed(gemini, ["x y", "z"])


def test_gemini_refuses_a_wrong_key_as_the_operators_problem(gemini):
    target = Target(provider="gemini", upstream_model="gemini-embedding-001", base_url=gemini.base_url,
                    api_key="not-the-key")
    with pytest.raises(errors.ProviderAuthFailed) as raised:
        run(GeminiAdapter().embed(EmbeddingRequest(model="g", inputs=["x"]), target))
    assert "not-the-key" not in raised.value.message


def test_gemini_and_cohere_refuse_token_arrays_before_any_call(gemini, cohere):
    with pytest.raises(errors.UnsupportedFeature):
        gemini_embed(gemini, [[1, 2]])
    with pytest.raises(errors.UnsupportedFeature):
        cohere_embed(cohere, [[1, 2]])
    assert gemini.requests == [] and cohere.requests == []


def test_cohere_embeds_with_input_type_float_and_bills_its_billed_units(cohere):
    result = cohere_embed(cohere, ["find the invoice", "invoices from march"], input_type="query", dimensions=256)
    assert result.vectors == [fake_vector("find the invoice", 256), fake_vector("invoices from march", 256)]
    assert (result.usage.input_tokens, result.usage_estimated) == (6, False)
    call = cohere.requests[-1]
    assert call["path"] == "/v2/embed" and call["headers"]["Authorization"] == f"Bearer {cohere_upstream.API_KEY}"
    assert call["body"] == {"model": "embed-v4.0", "texts": ["find the invoice", "invoices from march"],
                            "input_type": "search_query", "embedding_types": ["float"], "output_dimension": 256}


def test_cohere_defaults_to_search_document_without_a_hint(cohere):
    cohere_embed(cohere, ["plain text"], model="embed-english-v3.0", input_type="similarity")
    cohere_embed(cohere, ["plain text"], model="embed-english-v3.0")
    assert [call["body"]["input_type"] for call in cohere.requests] == ["search_document", "search_document"]


def test_cohere_batches_of_more_than_96_are_split_with_billed_units_summed(cohere):
    texts = [f"row {n} of the table" for n in range(200)]
    result = cohere_embed(cohere, texts)
    assert [len(call["body"]["texts"]) for call in cohere.requests] == [96, 96, 8]
    assert result.vectors == [fake_vector(text, 1536) for text in texts]
    assert result.usage.input_tokens == 5 * 200 and not result.usage_estimated


def test_cohere_without_billed_units_is_counted_locally(cohere):
    cohere.enqueue(CohereEmbedReply(send_billed_units=False))
    result = cohere_embed(cohere, ["some words here"])
    assert result.usage_estimated and result.usage.input_tokens == count_inputs(["some words here"])


@pytest.mark.parametrize(("status", "error"), [(429, errors.ProviderRateLimited), (500, errors.ProviderUnavailable),
                                               (402, errors.ProviderAuthFailed)])
def test_cohere_failures_become_the_gateways_errors(cohere, status, error):
    cohere.enqueue(CohereReply(status=status, error_message="scripted"))
    with pytest.raises(error):
        cohere_embed(cohere, ["x"])


def test_cohere_refuses_a_dimension_the_model_does_not_make(cohere):
    with pytest.raises(errors.ProviderBadRequest, match="output_dimension"):
        cohere_embed(cohere, ["x"], dimensions=300)
