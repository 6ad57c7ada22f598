"""Embeddings through the OpenAI-shaped adapters (OpenAI, Azure OpenAI, Mistral's limits, Jina's and
Voyage's fields), called through the adapter interface against fakes of each wire format over real
HTTP: vectors in the request's order across split batches, base64 passed through exactly, usage
summed or counted locally, and every vendor failure mapped to the gateway's own errors."""

import pytest

from providers import errors
from providers.adapters.openai.azure import AzureOpenAIAdapter
from providers.adapters.openai.compatible import OpenAICompatibleAdapter
from providers.embedding_types import EmbeddingRequest
from providers.tokenizer import count_inputs
from providers.types import Target
from tests.conftest import run_adapter_call as run
from tests.fakes import azure_openai
from tests.fakes.openai_embeddings import EmbeddingReply, fake_vector
from tests.fakes.openai_upstream import API_KEY, Reply
from tests.fakes.rerank_hosts import JINA_KEY, VOYAGE_KEY, FakeJina, FakeVoyage

ADAPTER = OpenAICompatibleAdapter()


def openai_target(fake, model: str = "text-embedding-3-small", **quirks) -> Target:
    return Target(provider="openai", upstream_model=model, base_url=fake.base_url, api_key=API_KEY,
                  total_timeout=30, quirks=quirks)


def embed(target: Target, inputs, **fields):
    return run(ADAPTER.embed(EmbeddingRequest(model="m", inputs=inputs, **fields), target))


def sent(fake) -> list[dict]:
    return [request["body"] for request in fake.requests if request["path"].endswith("/embeddings")]


@pytest.fixture(scope="module")
def jina():
    fake = FakeJina().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def voyage():
    fake = FakeVoyage().start()
    yield fake
    fake.stop()


def test_vectors_come_back_in_order_with_openais_token_count(fake_openai):
    result = embed(openai_target(fake_openai), ["the cat sat", "a dog", "birds sing loudly today"])
    assert result.vectors == [fake_vector(text, 1536) for text in ["the cat sat", "a dog", "birds sing loudly today"]]
    assert (result.usage.input_tokens, result.usage_estimated) == (9, False)
    assert result.upstream_model == "text-embedding-3-small"
    assert sent(fake_openai) == [{"model": "text-embedding-3-small",
                                  "input": ["the cat sat", "a dog", "birds sing loudly today"]}]


def test_base64_asked_of_openai_passes_the_float32_values_through_exactly(fake_openai):
    result = embed(openai_target(fake_openai, embedding_base64=True), ["alpha beta", "gamma"],
                   encoding_format="base64", dimensions=8, user="user-42")
    assert result.vectors == [fake_vector("alpha beta", 8), fake_vector("gamma", 8)]
    assert sent(fake_openai)[-1] == {"model": "text-embedding-3-small", "input": ["alpha beta", "gamma"],
                                     "dimensions": 8, "encoding_format": "base64", "user": "user-42"}


def test_a_host_that_has_not_declared_base64_is_asked_for_floats(fake_openai):
    result = embed(openai_target(fake_openai), ["alpha"], encoding_format="base64")
    assert result.vectors == [fake_vector("alpha", 1536)]
    assert "encoding_format" not in sent(fake_openai)[-1]


def test_token_arrays_reach_an_openai_shaped_host(fake_openai):
    result = embed(openai_target(fake_openai), [[1, 2, 3], [4, 5]], dimensions=4)
    assert result.vectors == [fake_vector([1, 2, 3], 4), fake_vector([4, 5], 4)]
    assert result.usage.input_tokens == 5


def test_more_inputs_than_a_call_takes_are_split_and_put_back_in_order(fake_openai):
    texts = [f"document number {n}" for n in range(2500)]
    result = embed(openai_target(fake_openai), texts, dimensions=4)
    assert [len(body["input"]) for body in sent(fake_openai)] == [2048, 452]
    assert result.vectors == [fake_vector(text, 4) for text in texts]
    assert result.usage.input_tokens == 3 * 2500


def test_a_hosts_token_limit_per_call_is_kept(fake_openai, monkeypatch):
    # Mistral's limits, as its catalog row declares them; the fake refuses any call over them.
    monkeypatch.setattr(fake_openai, "embedding_limits", (512, 40), raising=False)
    texts = [f"chunk {n} " + "word " * 6 for n in range(12)]  # 8 words, 46 bytes each
    result = embed(openai_target(fake_openai, embedding_batch_size=512, embedding_batch_tokens=100), texts,
                   dimensions=4)
    calls = sent(fake_openai)
    assert len(calls) == 6 and all(len(body["input"]) == 2 for body in calls)
    assert [text for body in calls for text in body["input"]] == texts
    assert result.vectors == [fake_vector(text, 4) for text in texts]
    assert result.usage.input_tokens == 8 * 12


def test_embeddings_listed_out_of_order_are_put_back_by_index(fake_openai):
    fake_openai.enqueue(EmbeddingReply(reverse=True))
    result = embed(openai_target(fake_openai), ["first", "second", "third"], dimensions=4)
    assert result.vectors == [fake_vector(text, 4) for text in ["first", "second", "third"]]


def test_an_answer_without_usage_is_counted_locally_and_flagged_estimated(fake_openai):
    fake_openai.enqueue(EmbeddingReply(send_usage=False))
    result = embed(openai_target(fake_openai), ["hello world", "good morning"], dimensions=4)
    assert result.usage_estimated
    assert result.usage.input_tokens == count_inputs(["hello world", "good morning"]) > 0


def test_one_batch_without_usage_flags_the_whole_request_estimated(fake_openai):
    fake_openai.enqueue(EmbeddingReply(), EmbeddingReply(send_usage=False))
    texts = [f"text {n}" for n in range(3000)]
    result = embed(openai_target(fake_openai), texts, dimensions=4)
    assert result.usage_estimated
    assert result.usage.input_tokens == 2 * 2048 + count_inputs(texts[2048:])


@pytest.mark.parametrize(("reply", "error", "retryable"), [
    (Reply(status=429, error_type="requests", error_message="Rate limit reached", headers={"retry-after": "3"}),
     errors.ProviderRateLimited, True),
    (Reply(status=401, error_type="invalid_request_error", error_message="Incorrect API key sk-fake-upstream"),
     errors.ProviderAuthFailed, False),
    (Reply(status=400, error_type="invalid_request_error", error_message="'$.input' is invalid"),
     errors.ProviderBadRequest, False),
    (Reply(status=503, error_type="server_error", error_message="overloaded"), errors.ProviderUnavailable, True),
    (EmbeddingReply(raw_body='{"object": "list", "data": ['), errors.ProviderMalformed, True),
    (EmbeddingReply(raw_body='{"object": "list", "data": [{"index": 0, "embedding": [0.5]}], "model": "m"}'),
     errors.ProviderMalformed, True),
])
def test_vendor_failures_become_the_gateways_errors(fake_openai, reply, error, retryable):
    fake_openai.enqueue(reply)
    with pytest.raises(error) as raised:
        embed(openai_target(fake_openai), ["one", "two"], dimensions=4)
    assert raised.value.retryable is retryable
    assert API_KEY not in raised.value.message
    if error is errors.ProviderRateLimited:
        assert raised.value.retry_after == 3.0


def test_a_failed_batch_fails_the_request(fake_openai):
    fake_openai.enqueue(EmbeddingReply(), Reply(status=500, error_message="boom"))
    with pytest.raises(errors.ProviderUnavailable):
        embed(openai_target(fake_openai), [f"t {n}" for n in range(2100)], dimensions=4)


def test_azure_embeds_through_the_deployment_with_its_api_version_and_key():
    fake = azure_openai.FakeAzureOpenAI().start()
    try:
        target = Target(provider="azure", upstream_model="text-embedding-3-small", base_url=fake.endpoint,
                        api_key=azure_openai.API_KEY, quirks={"api_version": "2024-10-21"})
        result = run(AzureOpenAIAdapter().embed(EmbeddingRequest(model="azure/e", inputs=["hi there"],
                                                                 dimensions=4), target))
        assert result.vectors == [fake_vector("hi there", 4)] and result.usage.input_tokens == 2
        call = fake.requests[-1]
        assert call["path"] == "/openai/deployments/text-embedding-3-small/embeddings"
        assert call["query"] == {"api-version": "2024-10-21"} and call["headers"]["api-key"] == azure_openai.API_KEY
        wrong = Target(provider="azure", upstream_model="no-such-deployment", base_url=fake.endpoint,
                       api_key=azure_openai.API_KEY)
        with pytest.raises(errors.ProviderUnavailable, match="DeploymentNotFound"):
            run(AzureOpenAIAdapter().embed(EmbeddingRequest(model="azure/e", inputs=["hi"]), wrong))
    finally:
        fake.stop()


def test_jina_gets_its_task_and_dimensions_and_never_openais_user(jina):
    jina.reset()
    target = Target(provider="jina", upstream_model="jina-embeddings-v3", base_url=jina.base_url,
                    api_key=JINA_KEY, quirks={"embedding_dialect": "jina"})
    result = embed(target, ["what is rag", "rag retrieves documents"], input_type="query", dimensions=32,
                   user="u-1")
    assert result.vectors == [fake_vector("what is rag", 32), fake_vector("rag retrieves documents", 32)]
    assert result.usage.input_tokens == 6
    assert jina.requests[-1]["body"] == {"model": "jina-embeddings-v3", "input": ["what is rag",
                                         "rag retrieves documents"], "task": "retrieval.query", "dimensions": 32}


def test_voyage_gets_its_own_fields_and_answers_base64(voyage):
    voyage.reset()
    target = Target(provider="voyage", upstream_model="voyage-3.5", base_url=voyage.base_url, api_key=VOYAGE_KEY,
                    quirks={"embedding_dialect": "voyage", "embedding_base64": True})
    result = embed(target, ["a passage", "another passage here"], input_type="document", dimensions=256,
                   encoding_format="base64", user="u-1")
    assert result.vectors == [fake_vector("a passage", 256), fake_vector("another passage here", 256)]
    assert result.usage.input_tokens == 5 and not result.usage_estimated  # Voyage reports total_tokens only
    assert voyage.requests[-1]["body"] == {"model": "voyage-3.5", "input": ["a passage", "another passage here"],
                                           "output_dimension": 256, "input_type": "document",
                                           "encoding_format": "base64"}


def test_token_arrays_are_refused_before_any_call_where_the_host_takes_text_only(voyage):
    voyage.reset()
    target = Target(provider="voyage", upstream_model="voyage-3.5", base_url=voyage.base_url, api_key=VOYAGE_KEY,
                    quirks={"embedding_dialect": "voyage"})
    with pytest.raises(errors.UnsupportedFeature, match="token arrays"):
        embed(target, [[1, 2, 3]])
    assert voyage.requests == []


def test_a_fastapi_error_body_keeps_its_message(voyage):
    voyage.reset()
    # Voyage declared without its dialect: OpenAI's ``dimensions`` goes out, and Voyage refuses it.
    target = Target(provider="voyage", upstream_model="voyage-3.5", base_url=voyage.base_url, api_key=VOYAGE_KEY)
    with pytest.raises(errors.ProviderBadRequest, match="unexpected field: dimensions"):
        embed(target, ["x"], dimensions=256)
