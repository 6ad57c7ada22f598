"""A cache hit answers in the protocol the client used: /v1/messages (Anthropic's SDK, streamed and
not), /v1/responses and /v1/embeddings, each without calling the provider again."""

import pytest

from caching.models import CacheEntry
from gateway.cache_settings import update_cache_settings
from tests.conftest import wait_for
from tests.fakes.openai_embeddings import fake_vector
from usage.models import UsageRecord

MODEL = "openai/gpt-4o-mini"
EMBEDDER = "openai/text-embedding-3-small"


def chat_calls(fake) -> list[dict]:
    return [request for request in fake.requests if "messages" in request["body"]]


def embedding_calls(fake) -> list[dict]:
    return [request for request in fake.requests if request.get("path", "").endswith("/embeddings")]


@pytest.fixture
def caching_on(tenant, other_tenant):
    update_cache_settings(tenant, enabled=True)
    update_cache_settings(other_tenant, enabled=True)


def test_messages_are_answered_from_the_cache_whole_and_streamed(claude_sdk_for, api_key, fake_openai, tenant,
                                                                 caching_on):
    claude = claude_sdk_for(api_key)
    # This SDK no longer takes temperature as an argument; the API (and the gateway) still does.
    ask = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}],
           "extra_body": {"temperature": 0}}
    first = claude.messages.with_raw_response.create(**ask)
    second = claude.messages.with_raw_response.create(**ask)
    assert (first.headers["x-tollgate-cache"], second.headers["x-tollgate-cache"]) == ("miss", "hit")
    message = second.parse()
    assert message.content[0].text == first.parse().content[0].text == "Hello from the fake upstream."
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0

    with claude.messages.stream(**ask) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the fake upstream."
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == message.usage.output_tokens
    assert len(chat_calls(fake_openai)) == 1
    wait_for(lambda: UsageRecord.objects.filter(tenant=tenant, ending="cache_hit").count() == 2,
             what="both hits recorded")


def test_responses_are_answered_from_the_cache(client, fake_openai, tenant, caching_on):
    first = client.responses.with_raw_response.create(model=MODEL, input="hello", temperature=0)
    second = client.responses.with_raw_response.create(model=MODEL, input="hello", temperature=0)
    assert (first.headers["x-tollgate-cache"], second.headers["x-tollgate-cache"]) == ("miss", "hit")
    answer = second.parse()
    assert answer.output_text == first.parse().output_text == "Hello from the fake upstream."
    assert answer.status == "completed"
    assert client.responses.retrieve(answer.id).output_text == answer.output_text  # stored as any response
    assert len(chat_calls(fake_openai)) == 1


def test_embeddings_are_answered_from_the_cache_within_the_tenant(client, other_client, fake_openai, tenant,
                                                                  other_tenant, caching_on):
    texts = ["the cat sat", "a dog"]
    first = client.embeddings.with_raw_response.create(model=EMBEDDER, input=texts)
    second = client.embeddings.with_raw_response.create(model=EMBEDDER, input=texts)
    assert (first.headers["x-tollgate-cache"], second.headers["x-tollgate-cache"]) == ("miss", "hit")
    assert [item.embedding for item in second.parse().data] == [fake_vector(text, 1536) for text in texts]
    assert second.parse().usage.prompt_tokens == first.parse().usage.prompt_tokens == 5
    hit = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant, ending="cache_hit").first(), what="the hit")
    assert (hit.model, hit.capability, hit.input_tokens, hit.cost) == (EMBEDDER, "embedding", 5, 0)

    other = other_client.embeddings.with_raw_response.create(model=EMBEDDER, input=texts)
    assert other.headers["x-tollgate-cache"] == "miss"
    assert len(embedding_calls(fake_openai)) == 2
    assert CacheEntry.objects.filter(tenant=other_tenant).count() == 1


def test_embeddings_in_another_encoding_or_size_are_not_the_same_request(client, fake_openai, caching_on):
    client.embeddings.create(model=EMBEDDER, input="alpha beta", encoding_format="float")
    assert client.embeddings.with_raw_response.create(
        model=EMBEDDER, input="alpha beta", encoding_format="float", dimensions=8).headers["x-tollgate-cache"] == "miss"
    assert client.embeddings.with_raw_response.create(
        model=EMBEDDER, input="alpha beta").headers["x-tollgate-cache"] == "miss"  # the SDK asks for base64
    assert len(embedding_calls(fake_openai)) == 3
