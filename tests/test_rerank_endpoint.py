"""POST /v1/rerank (plain HTTP, as rerank clients send it) and the native embedding APIs behind
/v1/embeddings (the openai SDK): Cohere's search units and Gemini's batchEmbedContents reached by
changing only the base URL and key, each call billed once on the tenant's record."""

from decimal import Decimal

import pytest

from tests.fakes.openai_embeddings import fake_vector
from usage.models import UsageRecord

DOCUMENTS = ["Paris is the capital of France.", "Bananas are yellow.", {"text": "The Eiffel Tower is in Paris."}]


def test_cohere_rerank_ranks_bills_a_search_unit_and_returns_the_clients_documents(http, cohere, tenant):
    answer = http.post("/rerank", json={"model": "cohere/rerank-v3.5", "query": "capital of France",
                                        "documents": DOCUMENTS, "top_n": 2, "return_documents": True})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["results"]) == 2
    scores = [hit["relevance_score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)
    top = body["results"][0]
    assert top["index"] in (0, 2)
    expected = DOCUMENTS[top["index"]]
    assert top["document"] == (expected if isinstance(expected, dict) else {"text": expected})
    assert body["meta"]["billed_units"] == {"search_units": 1}
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.model, record.provider) == ("cohere/rerank-v3.5", "cohere")
    assert record.cost == Decimal("2.00") / 1000
    assert [r["path"] for r in cohere.requests] == ["/v2/rerank"]


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "cohere/rerank-v3.5", "documents": ["a"]}, "query"),
    ({"model": "cohere/rerank-v3.5", "query": "q"}, "documents"),
    ({"model": "cohere/rerank-v3.5", "query": "q", "documents": []}, "documents"),
    ({"model": "cohere/rerank-v3.5", "query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
])
def test_malformed_rerank_bodies_get_a_400_and_no_provider_call(http, cohere, tenant, body, param):
    answer = http.post("/rerank", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    assert cohere.requests == []


def test_an_embedding_model_is_not_a_reranker(http, cohere, tenant):
    answer = http.post("/rerank", json={"model": "cohere/embed-v4.0", "query": "q", "documents": ["a"]})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "wrong_endpoint")


def test_cohere_embeddings_through_the_openai_sdk(client, cohere, tenant):
    answer = client.embeddings.create(model="cohere/embed-v4.0", input=["first text", "second one here"])
    assert [item.embedding for item in answer.data] == [fake_vector(t, 1536) for t in ["first text", "second one here"]]
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.model, record.input_tokens) == ("cohere/embed-v4.0", answer.usage.prompt_tokens)
    assert record.cost == Decimal("0.12") * record.input_tokens / 1_000_000
    assert cohere.requests[-1]["path"] == "/v2/embed"


def test_gemini_embeddings_through_the_openai_sdk(client, catalog, tenant):
    from tests.conftest import serve_provider_from
    from tests.fakes.gemini_embeddings import API_KEY, FakeGeminiEmbeddings

    fake = FakeGeminiEmbeddings().start()
    try:
        serve_provider_from("gemini", fake.base_url, API_KEY)
        answer = client.embeddings.create(model="gemini/gemini-embedding-001", input=["alpha", "beta gamma"],
                                          dimensions=768)
        assert len(answer.data) == 2 and len(answer.data[0].embedding) == 768
        assert ":batchEmbedContents" in fake.requests[-1]["path"]
        record = UsageRecord.objects.get(tenant=tenant)
        assert record.model == "gemini/gemini-embedding-001" and record.input_tokens > 0
    finally:
        fake.stop()


def test_rank_fields_choose_what_an_object_is_ranked_on(http, cohere, tenant):
    documents = [{"title": "Paris", "body": "The capital of France.", "id": "p1"},
                 {"title": "Bananas", "body": "They are yellow.", "id": "b2"}]
    answer = http.post("/v2/rerank", json={"model": "cohere/rerank-v3.5", "query": "capital of France",
                                           "documents": documents, "rank_fields": ["title"], "return_documents": True})
    assert answer.status_code == 200, answer.text
    assert cohere.requests[0]["body"]["documents"] == ["title: Paris", "title: Bananas"]
    assert {hit["document"]["id"] for hit in answer.json()["results"]} == {"p1", "b2"}  # the client's own back


@pytest.mark.parametrize(("extra", "param"), [
    ({"rank_fields": ["author"]}, "documents"),
    ({"rank_fields": "title"}, "rank_fields"),
    ({"max_chunks_per_doc": 10}, "max_chunks_per_doc"),
])
def test_rank_options_that_cannot_be_honoured_are_refused(http, cohere, tenant, extra, param):
    answer = http.post("/rerank/", json={"model": "cohere/rerank-v3.5", "query": "q",
                                         "documents": [{"title": "a"}], **extra})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param
    assert cohere.requests == []
