"""The semantic cache: a chat whose last user message embeds (through the operator's embedding
model, a fake upstream answering with vectors the test chose) within the similarity threshold of
a kept one, with the same model and everything else the same, is answered from the cache; one
just outside the threshold is not. Off unless the plan and the tenant both turn it on."""

import pytest

from billing.models import Plan
from caching import semantic
from gateway.cache_settings import update_cache_settings
from tests.conftest import wait_for
from usage.models import UsageRecord

MODEL = "openai/gpt-4o-mini"
FRANCE = "What is the capital of France?"
FRANCE_AGAIN = "Tell me the capital of France"  # cosine 0.96 with FRANCE
SPAIN = "What is the capital of Spain?"  # cosine 0.94 with FRANCE
VECTORS = {FRANCE: [1.0, 0.0, 0.0], FRANCE_AGAIN: [0.96, 0.28, 0.0], SPAIN: [0.94, 0.3412, 0.0]}


def chat_calls(fake) -> list[dict]:
    return [request for request in fake.requests if "messages" in request["body"]]


def embedding_calls(fake) -> list[dict]:
    return [request for request in fake.requests if request.get("path", "").endswith("/embeddings")]


@pytest.fixture
def semantic_on(settings, tenant, other_tenant, fake_openai):
    settings.CACHE_SEMANTIC_THRESHOLD = 0.95
    settings.CACHE_SEMANTIC_MODEL = "openai/text-embedding-3-small"
    Plan.objects.filter(slug="pro").update(semantic_cache_enabled=True)
    for each in (tenant, other_tenant):
        update_cache_settings(each, enabled=True, semantic=True)
    fake_openai.chosen_vectors.update(VECTORS)
    semantic.forget_all()
    yield
    semantic.forget_all()


def ask(client, text: str, **options):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, temperature=0, messages=[{"role": "user", "content": text}], **options)
    return raw.headers, raw.parse()


def test_a_question_that_means_the_same_is_answered_from_the_cache(client, fake_openai, tenant, semantic_on):
    assert ask(client, FRANCE)[0]["x-tollgate-cache"] == "miss"
    headers, answer = ask(client, FRANCE_AGAIN)
    assert (headers["x-tollgate-cache"], headers["x-tollgate-cache-match"]) == ("hit", "semantic")
    assert answer.choices[0].message.content == "Hello from the fake upstream."
    assert len(chat_calls(fake_openai)) == 1
    assert [call["body"]["input"] for call in embedding_calls(fake_openai)] == [[FRANCE], [FRANCE_AGAIN]]
    assert embedding_calls(fake_openai)[0]["body"]["model"] == "text-embedding-3-small"
    # The operator's embeddings are nobody's usage: only the two chats are on the tenant's bill.
    records = wait_for(lambda: (lambda rows: rows if len(rows) == 2 else None)(
        sorted(UsageRecord.objects.filter(tenant=tenant).values_list("capability", "ending"))), what="both records")
    assert records == [("chat", "cache_hit"), ("chat", "completed")]


def test_a_question_just_outside_the_threshold_reaches_the_provider(client, fake_openai, semantic_on):
    ask(client, FRANCE)
    assert ask(client, SPAIN)[0]["x-tollgate-cache"] == "miss"
    assert len(chat_calls(fake_openai)) == 2


def test_the_threshold_is_a_setting(client, fake_openai, semantic_on, settings):
    settings.CACHE_SEMANTIC_THRESHOLD = 0.93
    ask(client, FRANCE)
    assert ask(client, SPAIN)[0]["x-tollgate-cache-match"] == "semantic"
    assert len(chat_calls(fake_openai)) == 1


def test_the_rest_of_the_request_must_be_the_same(client, fake_openai, semantic_on):
    ask(client, FRANCE)
    assert ask(client, FRANCE_AGAIN, max_tokens=20)[0]["x-tollgate-cache"] == "miss"
    assert ask(client, FRANCE_AGAIN, seed=3)[0]["x-tollgate-cache"] == "miss"
    assert len(chat_calls(fake_openai)) == 3


def test_another_tenant_never_matches(client, other_client, fake_openai, semantic_on):
    ask(client, FRANCE)
    assert ask(other_client, FRANCE_AGAIN)[0]["x-tollgate-cache"] == "miss"
    assert ask(client, FRANCE_AGAIN)[0]["x-tollgate-cache-match"] == "semantic"  # Alice's own
    assert ask(other_client, FRANCE)[0]["x-tollgate-cache-match"] == "semantic"  # Charlie's own
    assert len(chat_calls(fake_openai)) == 2


def test_semantic_matching_is_off_unless_the_tenant_turns_it_on(client, fake_openai, tenant, semantic_on):
    update_cache_settings(tenant, semantic=False)
    ask(client, FRANCE)
    assert ask(client, FRANCE_AGAIN)[0]["x-tollgate-cache"] == "miss"
    assert ask(client, FRANCE)[0]["x-tollgate-cache-match"] == "exact"
    assert embedding_calls(fake_openai) == []


def test_semantic_matching_needs_a_plan_that_offers_it(client, fake_openai, semantic_on):
    Plan.objects.filter(slug="pro").update(semantic_cache_enabled=False)
    ask(client, FRANCE)
    assert ask(client, FRANCE_AGAIN)[0]["x-tollgate-cache"] == "miss"
    assert embedding_calls(fake_openai) == []


def test_a_failed_embedding_leaves_an_exact_lookup(client, fake_openai, semantic_on):
    from tests.fakes.openai_embeddings import EmbeddingReply

    fake_openai.enqueue(EmbeddingReply(status=400))
    assert ask(client, FRANCE)[0]["x-tollgate-cache"] == "miss"
    assert ask(client, FRANCE)[0]["x-tollgate-cache-match"] == "exact"


def test_the_index_matches_within_a_scope_forgets_expired_and_keeps_its_bound(settings):
    settings.CACHE_SEMANTIC_MAX_ENTRIES = 3
    semantic.remember(1, "scope-a", [1.0, 0.0, 0.0], "east", expires_at=100)
    semantic.remember(1, "scope-a", [0.0, 1.0, 0.0], "north", expires_at=200)
    semantic.remember(1, "scope-b", [1.0, 0.0, 0.0], "other-scope", expires_at=200)
    semantic.remember(2, "scope-a", [1.0, 0.01, 0.0], "other-tenant", expires_at=200)

    assert semantic.nearest(1, "scope-a", [0.99, 0.05, 0.0], 0.95, now=50)[0] == "east"
    assert semantic.nearest(1, "scope-a", [0.99, 0.05, 0.0], 0.95, now=150) is None  # east expired: forgotten
    assert semantic.nearest(1, "scope-a", [0.1, 0.99, 0.0], 0.95, now=150)[0] == "north"
    assert semantic.nearest(1, "scope-a", [0.1, 0.99], 0.95, now=150) is None  # other dimensions never match
    for n in range(3):  # past the tenant's bound the least recently used go: north was matched last
        semantic.remember(1, "scope-c", [0.0, 0.0, 1.0 + n], f"new-{n}", expires_at=300)
    assert semantic.nearest(1, "scope-a", [0.1, 0.99, 0.0], 0.95, now=150) is None
    assert semantic.nearest(1, "scope-c", [0.0, 0.0, 1.0], 0.95, now=150)[0] in {"new-0", "new-1", "new-2"}
    assert semantic.nearest(2, "scope-a", [1.0, 0.0, 0.0], 0.95, now=150)[0] == "other-tenant"
