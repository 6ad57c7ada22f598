"""Rerank through Cohere's /v2/rerank and the Jina- and Voyage-shaped /v1/rerank, called through the
adapter interface against fakes over real HTTP: hits most relevant first within top_n, the client's
own documents handed back, billing in search units (Cohere) or tokens (Jina, Voyage), and failures
mapped to the gateway's errors. Which adapters rerank at all is an explicit flag."""

import pytest

from providers import errors
from providers.adapters.base import Adapter
from providers.adapters.cohere.adapter import CohereAdapter
from providers.adapters.gemini.adapter import GeminiAdapter
from providers.adapters.openai.azure import AzureOpenAIAdapter
from providers.adapters.openai.compatible import OpenAICompatibleAdapter
from providers.embedding_types import RerankRequest
from providers.tokenizer import estimate_rerank_tokens
from providers.types import Target
from tests.conftest import run_adapter_call as run
from tests.fakes import cohere_upstream
from tests.fakes.cohere_embed import CohereEmbedReply
from tests.fakes.rerank_hosts import JINA_KEY, VOYAGE_KEY, FakeJina, FakeVoyage, HostReply

QUERY = "capital of the united states"
DOCUMENTS = ["Carson City is the capital of Nevada.",
             "Washington is the capital of the United States.",
             "Capital punishment exists in the United States."]


@pytest.fixture(scope="module")
def jina_server():
    fake = FakeJina().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def voyage_server():
    fake = FakeVoyage().start()
    yield fake
    fake.stop()


@pytest.fixture
def jina(jina_server):
    jina_server.reset()
    return jina_server


@pytest.fixture
def voyage(voyage_server):
    voyage_server.reset()
    return voyage_server


@pytest.fixture
def cohere(cohere_server):
    cohere_server.reset()
    return cohere_server


def cohere_rerank(fake, **fields):
    target = Target(provider="cohere", upstream_model="rerank-v3.5", base_url=fake.base_url,
                    api_key=cohere_upstream.API_KEY)
    fields.setdefault("documents", DOCUMENTS)
    return run(CohereAdapter().rerank(RerankRequest(model="cohere/rerank-v3.5", query=QUERY, **fields), target))


def host_target(fake, dialect: str, model: str, key: str) -> Target:
    return Target(provider=dialect, upstream_model=model, base_url=fake.base_url, api_key=key,
                  quirks={"rerank": dialect})


def host_rerank(target: Target, **fields):
    fields.setdefault("documents", DOCUMENTS)
    return run(OpenAICompatibleAdapter().rerank(RerankRequest(model="m", query=QUERY, **fields), target))


def test_cohere_ranks_within_top_n_and_bills_search_units(cohere):
    result = cohere_rerank(cohere, top_n=2)
    assert [(hit.index, hit.relevance_score) for hit in result.results] == [(1, 1.0), (2, 0.8)]
    assert all(hit.document is None for hit in result.results)
    assert (result.usage.search_units, result.usage.input_tokens, result.usage_estimated) == (1, 0, False)
    call = cohere.requests[-1]
    assert call["path"] == "/v2/rerank"
    assert call["body"] == {"model": "rerank-v3.5", "query": QUERY, "documents": DOCUMENTS, "top_n": 2}


def test_cohere_gets_objects_as_yaml_and_the_client_gets_its_own_objects_back(cohere):
    documents = [{"title": "Nevada", "text": "Carson City is the capital of Nevada."},
                 {"text": "Washington is the capital of the United States."}]
    result = cohere_rerank(cohere, documents=documents, return_documents=True)
    assert cohere.requests[-1]["body"]["documents"] == [
        "title: Nevada\ntext: Carson City is the capital of Nevada.", "Washington is the capital of the United States."]
    assert [hit.document for hit in result.results] == [documents[1], documents[0]]


def test_cohere_bills_one_search_unit_per_hundred_documents(cohere):
    documents = [f"document {n} about the capital" for n in range(250)]
    assert cohere_rerank(cohere, documents=documents).usage.search_units == 3
    cohere.enqueue(CohereEmbedReply(send_billed_units=False))
    estimated = cohere_rerank(cohere, documents=documents)
    assert (estimated.usage.search_units, estimated.usage_estimated) == (3, True)


@pytest.mark.parametrize(("status", "error"), [(429, errors.ProviderRateLimited), (401, errors.ProviderAuthFailed),
                                               (503, errors.ProviderUnavailable), (400, errors.ProviderBadRequest)])
def test_cohere_rerank_failures_become_the_gateways_errors(cohere, status, error):
    cohere.enqueue(cohere_upstream.Reply(status=status, error_message="scripted failure"))
    with pytest.raises(error):
        cohere_rerank(cohere)


def test_jina_ranks_with_top_n_and_bills_its_tokens(jina):
    result = host_rerank(host_target(jina, "jina", "jina-reranker-v3", JINA_KEY), top_n=1, return_documents=True)
    assert [(hit.index, hit.document) for hit in result.results] == [(1, DOCUMENTS[1])]
    assert (result.usage.input_tokens, result.usage.search_units, result.usage_estimated) == (5 * 3 + 22, 0, False)
    call = jina.requests[-1]
    assert call["path"] == "/v1/rerank" and call["headers"]["Authorization"] == f"Bearer {JINA_KEY}"
    assert call["body"] == {"model": "jina-reranker-v3", "query": QUERY, "documents": DOCUMENTS,
                            "return_documents": False, "top_n": 1}


def test_voyage_takes_top_k_and_answers_in_data(voyage):
    result = host_rerank(host_target(voyage, "voyage", "rerank-2.5", VOYAGE_KEY), top_n=2)
    assert [hit.index for hit in result.results] == [1, 2]
    assert result.usage.input_tokens == 5 * 3 + 22
    assert voyage.requests[-1]["body"] == {"model": "rerank-2.5", "query": QUERY, "documents": DOCUMENTS,
                                           "return_documents": False, "top_k": 2}


def test_voyage_over_its_document_limit_is_the_clients_bad_request(voyage):
    with pytest.raises(errors.ProviderBadRequest, match="cannot exceed 1000"):
        host_rerank(host_target(voyage, "voyage", "rerank-2.5", VOYAGE_KEY), documents=["d"] * 1001)


def test_a_rerank_without_usage_is_counted_locally(jina):
    jina.enqueue(HostReply(send_usage=False))
    request = RerankRequest(model="m", query=QUERY, documents=DOCUMENTS)
    result = host_rerank(host_target(jina, "jina", "jina-reranker-v3", JINA_KEY))
    assert result.usage_estimated and result.usage.input_tokens == estimate_rerank_tokens(request) > 0


@pytest.mark.parametrize("body", ['{"results": [{"index": 7, "relevance_score": 0.5}]}',
                                  '{"results": [{"index": 0}]}', '{"model": "m"}'])
def test_hits_not_of_the_documents_sent_are_malformed(jina, body):
    jina.enqueue(HostReply(raw_body=body))
    with pytest.raises(errors.ProviderMalformed):
        host_rerank(host_target(jina, "jina", "jina-reranker-v3", JINA_KEY))


def test_jina_rate_limit_and_auth_failures(jina):
    jina.enqueue(HostReply(status=429, detail="Too many requests", headers={"Retry-After": "2"}))
    target = host_target(jina, "jina", "jina-reranker-v3", JINA_KEY)
    with pytest.raises(errors.ProviderRateLimited) as raised:
        host_rerank(target)
    assert raised.value.retry_after == 2.0
    wrong = Target(provider="jina", upstream_model="jina-reranker-v3", base_url=jina.base_url, api_key="jina_wrong",
                   quirks={"rerank": "jina"})
    with pytest.raises(errors.ProviderAuthFailed):
        host_rerank(wrong)


def test_only_adapters_and_providers_that_rerank_say_so():
    bare = Target(provider="groq", upstream_model="m", base_url="http://127.0.0.1:9", api_key="k")
    jina = Target(provider="jina", upstream_model="m", base_url="http://127.0.0.1:9", api_key="k",
                  quirks={"rerank": "jina"})
    assert CohereAdapter().can_rerank(bare) and OpenAICompatibleAdapter().can_rerank(jina)
    assert not OpenAICompatibleAdapter().can_rerank(bare)
    assert not AzureOpenAIAdapter().can_rerank(jina) and not GeminiAdapter().can_rerank(bare)
    assert not Adapter().can_rerank(bare) and not Adapter().can_embed(bare) and not Adapter().can_moderate(bare)
    with pytest.raises(errors.UnsupportedFeature):
        run(OpenAICompatibleAdapter().rerank(RerankRequest(model="m", query="q", documents=["d"]), bare))
