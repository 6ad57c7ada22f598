"""The answer cache through the official SDKs: a tenant's second identical deterministic request is
answered from the cache (whole or streamed, in the client's own protocol) without calling the
provider, billed at the plan's cache price on a `cache_hit` usage record; another tenant's identical
request still reaches the provider; no-store bypasses; an answer expires with its TTL."""

from decimal import Decimal

import pytest

from billing.models import Plan
from caching import store
from caching.models import CacheDay, CacheEntry
from gateway.api_keys import forget_keys
from gateway.cache_settings import update_cache_settings
from tests.conftest import wait_for
from usage.models import UsageRecord

MODEL = "openai/gpt-4o-mini"
HELLO = [{"role": "user", "content": "hello"}]


def chat_calls(fake) -> list[dict]:
    return [request for request in fake.requests if "messages" in request["body"]]


@pytest.fixture
def clock(monkeypatch):
    """The cache's clock, moved by the test (epoch seconds)."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(store, "clock", lambda: now[0])
    return now


@pytest.fixture
def caching_on(tenant, other_tenant, clock):
    """Both tenants have turned the cache on (their plan, Pro, offers it)."""
    update_cache_settings(tenant, enabled=True)
    update_cache_settings(other_tenant, enabled=True)


def ask(client, **options):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, temperature=0, **options)
    return raw.headers, raw.parse()


def test_the_second_identical_request_is_answered_from_the_cache(client, fake_openai, tenant, caching_on, clock):
    first_headers, first = ask(client)
    clock[0] += 12
    second_headers, second = ask(client)
    assert first_headers["x-tollgate-cache"] == "miss"
    assert (second_headers["x-tollgate-cache"], second_headers["x-tollgate-cache-match"]) == ("hit", "exact")
    assert second_headers["age"] == "12"
    assert len(chat_calls(fake_openai)) == 1
    assert second.choices[0].message.content == first.choices[0].message.content == "Hello from the fake upstream."
    assert second.usage.total_tokens == first.usage.total_tokens
    assert second.model == first.model == MODEL
    assert second.id != first.id  # a new completion, made of the kept answer


def test_a_hit_is_billed_at_the_plans_cache_price_on_a_cache_hit_record(client, fake_openai, tenant, caching_on):
    _, first = ask(client)
    original = UsageRecord.objects.get(tenant=tenant)
    headers, _ = ask(client)
    # A whole answer from the cache leaves before its record commits: the record follows at once.
    hit = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant, ending="cache_hit").first(),
                   what="the hit's record")
    assert hit.cost == 0 and Decimal(headers["x-tollgate-cost"]) == 0
    assert (hit.model, hit.provider, hit.input_tokens, hit.output_tokens) == (
        MODEL, "openai", original.input_tokens, original.output_tokens)
    assert headers["x-tollgate-attempts"] == "0"
    assert headers["x-tollgate-request-id"] == hit.request_id
    day = wait_for(lambda: CacheDay.objects.filter(tenant=tenant, hits=1).first(), what="the day's cache counts")
    assert (day.hits, day.misses, day.saved) == (1, 1, original.cost)

    Plan.objects.filter(slug="pro").update(cache_hit_price=Decimal("0.0005"))
    forget_keys()  # the plan as the next request reads it
    headers, _ = ask(client)
    priced = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant, ending="cache_hit", cost__gt=0).first(),
                      what="the priced hit's record")
    assert priced.cost == Decimal("0.0005") == Decimal(headers["x-tollgate-cost"])
    assert len(chat_calls(fake_openai)) == 1


def test_a_stream_is_answered_from_the_cache_as_a_stream(client, fake_openai, tenant, caching_on):
    whole_headers, whole = ask(client)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, temperature=0, stream=True,
                                                           stream_options={"include_usage": True})
    chunks = list(raw.parse())
    assert raw.headers["x-tollgate-cache"] == "hit"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == \
        whole.choices[0].message.content
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert len(chat_calls(fake_openai)) == 1
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant, ending="cache_hit").first(),
                      what="the streamed hit's record")
    assert record.streamed and record.cost == 0


def test_a_streamed_answer_is_kept_and_answers_a_whole_request(client, fake_openai, tenant, caching_on):
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0, stream=True)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    wait_for(lambda: CacheEntry.objects.filter(tenant=tenant).exists(), what="the kept answer")
    headers, whole = ask(client)
    assert headers["x-tollgate-cache"] == "hit"
    assert whole.choices[0].message.content == streamed == "Hello from the fake upstream."
    assert whole.choices[0].finish_reason == "stop"
    assert len(chat_calls(fake_openai)) == 1


def test_another_tenant_asking_the_same_always_reaches_the_provider(client, other_client, fake_openai, tenant,
                                                                     other_tenant, caching_on):
    assert [ask(client)[0]["x-tollgate-cache"] for _ in range(2)] == ["miss", "hit"]
    assert [ask(other_client)[0]["x-tollgate-cache"] for _ in range(2)] == ["miss", "hit"]
    assert len(chat_calls(fake_openai)) == 2  # once for Alice, once for Charlie
    assert CacheEntry.objects.filter(tenant=tenant).count() == 1
    assert CacheEntry.objects.filter(tenant=other_tenant).count() == 1
    wait_for(lambda: UsageRecord.objects.filter(tenant=other_tenant, ending="cache_hit").count() == 1,
             what="Charlie's hit recorded")
    assert UsageRecord.objects.filter(tenant=tenant, ending="cache_hit").count() == 1


def test_no_store_neither_reads_nor_keeps(client, fake_openai, tenant, caching_on):
    headers, _ = ask(client, extra_headers={"Cache-Control": "no-store"})
    assert (headers["x-tollgate-cache"], headers["x-tollgate-cache-reason"]) == ("bypass", "no-store")
    assert ask(client)[0]["x-tollgate-cache"] == "miss"
    headers, _ = ask(client, extra_headers={"Cache-Control": "no-store"})
    assert headers["x-tollgate-cache-reason"] == "no-store"
    assert len(chat_calls(fake_openai)) == 3
    assert CacheEntry.objects.filter(tenant=tenant).count() == 1


def test_no_cache_fetches_afresh_and_keeps_the_new_answer(client, fake_openai, caching_on):
    ask(client)
    headers, _ = ask(client, extra_headers={"Cache-Control": "no-cache"})
    assert (headers["x-tollgate-cache"], headers["x-tollgate-cache-reason"]) == ("bypass", "no-cache")
    assert ask(client)[0]["x-tollgate-cache"] == "hit"
    assert len(chat_calls(fake_openai)) == 2


def test_an_answer_expires_with_its_ttl(client, fake_openai, caching_on, clock):
    ask(client)
    clock[0] += 3599
    assert ask(client)[0]["x-tollgate-cache"] == "hit"
    clock[0] += 2
    assert ask(client)[0]["x-tollgate-cache"] == "miss"
    assert len(chat_calls(fake_openai)) == 2


def test_the_ttl_header_bounds_the_age_served_and_the_time_kept(client, fake_openai, caching_on, clock):
    ask(client, extra_headers={"x-tollgate-cache-ttl": "30"})
    clock[0] += 20
    assert ask(client)[0]["x-tollgate-cache"] == "hit"
    assert ask(client, extra_headers={"x-tollgate-cache-ttl": "10"})[0]["x-tollgate-cache"] == "miss"  # too old
    clock[0] += 9  # the answer just kept, for 10 seconds
    assert ask(client)[0]["age"] == "9"
    clock[0] += 2
    assert ask(client)[0]["x-tollgate-cache"] == "miss"
    assert len(chat_calls(fake_openai)) == 3
