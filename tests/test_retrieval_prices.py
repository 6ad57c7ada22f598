"""The catalog's embedding, rerank and moderation models, their list prices, and what a result costs:
input tokens per million, Cohere's search units per thousand, moderation free unless the operator
prices it; dimensions only where the catalog row says the model makes them. Money is Decimal."""

from decimal import Decimal

import pytest

from providers import errors, router
from providers.adapters.cohere.adapter import CohereAdapter
from providers.adapters.openai.compatible import OpenAICompatibleAdapter
from providers.catalog_seed import read_catalog, seed_catalog
from providers.embedding_types import EmbeddingRequest, RerankRequest, check_embedding_options
from providers.models import Model
from providers.pricing import cost_of
from providers.types import Target, Usage
from tests.conftest import run_adapter_call as run
from tests.conftest import serve_provider_from
from tests.fakes import cohere_upstream
from tests.fakes.openai_upstream import API_KEY

LIST_PRICES = {  # public id -> (capability, USD per million input tokens, USD per 1,000 searches)
    "openai/text-embedding-3-small": ("embedding", "0.02", "0"),
    "openai/text-embedding-3-large": ("embedding", "0.13", "0"),
    "openai/omni-moderation-latest": ("moderation", "0", "0"),
    "gemini/gemini-embedding-001": ("embedding", "0.15", "0"),
    "gemini/text-embedding-004": ("embedding", "0", "0"),
    "cohere/embed-v4.0": ("embedding", "0.12", "0"),
    "cohere/rerank-v3.5": ("rerank", "0", "2.00"),
    "mistral/mistral-embed": ("embedding", "0.10", "0"),
    "jina/jina-embeddings-v3": ("embedding", "0.05", "0"),
    "jina/jina-reranker-v3": ("rerank", "0.05", "0"),
    "voyage/voyage-3.5": ("embedding", "0.06", "0"),
    "voyage/rerank-2.5": ("rerank", "0.05", "0"),
}


def served(*slugs: str) -> router.Catalog:
    for slug in slugs:
        serve_provider_from(slug, "http://127.0.0.1:9", f"{slug}-key")
    return router.load_catalog()


def test_bootstrap_lists_the_default_retrieval_models_at_their_list_prices(catalog):
    for public_id, (capability, per_million, per_thousand_searches) in LIST_PRICES.items():
        row = Model.objects.get(public_id=public_id)
        row.full_clean()  # rerank and moderation are capabilities a row may have
        assert (row.capability, row.input_price, row.price_per_thousand_searches) == (
            capability, Decimal(per_million), Decimal(per_thousand_searches)), public_id


def test_bootstrap_declares_the_retrieval_quirks_of_each_host(catalog):
    seed_catalog(read_catalog(), {})  # a second bootstrap changes nothing
    quirks = {model.provider.slug: model.provider.quirks for model in Model.objects.filter(
        public_id__in=["openai/omni-moderation-latest", "jina/jina-reranker-v3", "voyage/rerank-2.5",
                       "mistral/mistral-embed"])}
    assert quirks["openai"] == {"embedding_base64": True, "moderations": True}
    assert quirks["jina"] == {"embedding_dialect": "jina", "rerank": "jina"}
    assert quirks["voyage"]["rerank"] == "voyage" and quirks["voyage"]["embedding_batch_size"] == 1000
    assert (quirks["mistral"]["embedding_batch_size"], quirks["mistral"]["embedding_batch_tokens"]) == (512, 16384)


def test_an_embedding_is_priced_per_million_input_tokens(catalog):
    model = served("openai").models["openai/text-embedding-3-small"]
    assert cost_of(model.prices, Usage(input_tokens=1_234)) == Decimal("0.00002468")
    assert cost_of(model.prices, Usage(input_tokens=1_000_000)) == Decimal("0.02")


def test_a_cohere_rerank_result_is_priced_per_thousand_searches(catalog, cohere_server):
    cohere_server.reset()
    model = served("cohere").models["cohere/rerank-v3.5"]
    target = Target(provider="cohere", upstream_model="rerank-v3.5", base_url=cohere_server.base_url,
                    api_key=cohere_upstream.API_KEY)
    documents = [f"document {n}" for n in range(150)]
    result = run(CohereAdapter().rerank(RerankRequest(model=model.public_id, query="document", documents=documents),
                                        target))
    assert result.usage.search_units == 2
    assert cost_of(model.prices, result.usage) == Decimal("0.004")


def test_token_billed_rerank_and_free_moderation(catalog):
    models = served("voyage", "openai").models
    assert cost_of(models["voyage/rerank-2.5"].prices, Usage(input_tokens=40_000)) == Decimal("0.002")
    assert cost_of(models["openai/omni-moderation-latest"].prices, Usage(input_tokens=5_000)) == Decimal(0)
    Model.objects.filter(public_id="openai/omni-moderation-latest").update(input_price=Decimal("0.01"))
    repriced = router.load_catalog().models["openai/omni-moderation-latest"]
    assert cost_of(repriced.prices, Usage(input_tokens=5_000)) == Decimal("0.00005")


def test_dimensions_only_where_the_catalog_row_allows_them(catalog):
    models = served("openai", "cohere").models

    def check(public_id: str, dimensions: int | None) -> None:
        request = EmbeddingRequest(model=public_id, inputs=["x"], dimensions=dimensions)
        check_embedding_options(request, models[public_id].media_options, public_id)

    check("openai/text-embedding-3-small", 512)
    check("openai/text-embedding-ada-002", None)
    check("cohere/embed-v4.0", 1024)
    with pytest.raises(errors.UnsupportedArgument, match="1 to 1536") as raised:
        check("openai/text-embedding-3-small", 2048)
    assert raised.value.param == "dimensions" and raised.value.status == 400
    with pytest.raises(errors.UnsupportedArgument, match="one fixed size"):
        check("openai/text-embedding-ada-002", 512)
    with pytest.raises(errors.UnsupportedArgument, match="256, 512, 1024, 1536"):
        check("cohere/embed-v4.0", 300)


def test_a_reservation_from_the_request_covers_what_the_provider_bills(catalog, fake_openai, cohere_server):
    cohere_server.reset()
    models = served("cohere").models
    embedding = EmbeddingRequest(model="openai/text-embedding-3-small", dimensions=4,
                                 inputs=["héllo wörld", "naïve café au lait", [101, 102, 103]])
    target = Target(provider="openai", upstream_model="text-embedding-3-small", base_url=fake_openai.base_url,
                    api_key=API_KEY)
    billed = run(OpenAICompatibleAdapter().embed(embedding, target)).usage
    assert embedding.most_usage().input_tokens == (13 + 2) + (20 + 2) + 3 >= billed.input_tokens == 2 + 4 + 3

    documents = [f"document {n}" for n in range(250)]
    rerank = RerankRequest(model="cohere/rerank-v3.5", query="document", documents=documents)
    cohere = Target(provider="cohere", upstream_model="rerank-v3.5", base_url=cohere_server.base_url,
                    api_key=cohere_upstream.API_KEY)
    result = run(CohereAdapter().rerank(rerank, cohere))
    prices = models["cohere/rerank-v3.5"].prices
    assert rerank.most_usage().search_units == result.usage.search_units == 3
    assert cost_of(prices, rerank.most_usage()) == cost_of(prices, result.usage) == Decimal("0.006")
    # A document long enough for Cohere to bill in chunks is reserved for every chunk.
    long = RerankRequest(model="cohere/rerank-v3.5", query="q", documents=["word " * 400] * 60)
    assert long.most_usage().search_units == 3  # (2,002 + 3) / 510: 4 chunks a document, 240 in all
