"""Where answers are kept: the database without REDIS_URL, a real Redis server with it; in both, a
tenant's entries are bounded (its oldest go first), expire with the cache's clock, and are found
only under their own tenant."""

import subprocess

import pytest

from caching import store
from caching.models import CacheEntry
from gateway.cache_settings import update_cache_settings
from tests.fakes.openai_upstream import Reply

MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def in_redis(settings, redis_url):
    settings.REDIS_URL = redis_url
    subprocess.run(["redis-cli", "-u", redis_url, "FLUSHALL"], check=True, capture_output=True)
    return redis_url


@pytest.fixture
def clock(monkeypatch):
    now = [1_800_000_000.0]
    monkeypatch.setattr(store, "clock", lambda: now[0])
    return now


@pytest.fixture
def caching_on(tenant, other_tenant, clock):
    update_cache_settings(tenant, enabled=True)
    update_cache_settings(other_tenant, enabled=True)


def ask(client, text: str = "hello") -> str:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": text}], temperature=0)
    return raw.headers["x-tollgate-cache"]


def redis_keys(url: str) -> list[str]:
    listed = subprocess.run(["redis-cli", "-u", url, "--scan", "--pattern", "tollgate:cache:*"], check=True,
                            capture_output=True, text=True).stdout.split()
    return sorted(listed)


def test_with_redis_answers_are_kept_there_per_tenant(client, other_client, fake_openai, tenant, other_tenant,
                                                      caching_on, in_redis, clock):
    assert [ask(client) for _ in range(2)] == ["miss", "hit"]
    assert ask(other_client) == "miss"
    assert not CacheEntry.objects.exists()
    keys = redis_keys(in_redis)
    assert [key for key in keys if key.startswith(f"tollgate:cache:{tenant.pk}:")] != []
    assert len([key for key in keys if not key.endswith((":index", ":sizes"))]) == 2  # one answer per tenant
    clock[0] += 3601
    assert ask(client) == "miss"


def test_with_redis_a_tenant_keeps_at_most_its_bound(client, fake_openai, caching_on, in_redis, settings, clock):
    settings.CACHE_MAX_ENTRIES_PER_TENANT = 2
    settings.CACHE_LOCAL_BYTES = 0  # no copies in this process: what Redis keeps is what is served
    for text in ("one", "two", "three"):
        clock[0] += 1
        ask(client, text)
    assert ask(client, "three") == "hit" and ask(client, "two") == "hit"
    assert ask(client, "one") == "miss"  # pushed out: the closest to expiring


def test_in_the_database_a_tenant_keeps_at_most_its_bound(client, other_client, fake_openai, tenant, other_tenant,
                                                          caching_on, settings, clock):
    settings.CACHE_MAX_ENTRIES_PER_TENANT = 2
    settings.CACHE_LOCAL_BYTES = 0  # no copies in this process: what the database keeps is what is served
    ask(other_client, "one")
    for text in ("one", "two", "three"):
        clock[0] += 1
        ask(client, text)
    assert CacheEntry.objects.filter(tenant=tenant).count() == 2
    assert CacheEntry.objects.filter(tenant=other_tenant).count() == 1  # Charlie's is not Alice's to push out
    assert ask(client, "one") == "miss"
    assert ask(other_client, "one") == "hit"


@pytest.mark.parametrize("where", ["database", "redis"])
def test_a_tenant_keeps_at_most_its_bytes(client, other_client, fake_openai, tenant, other_tenant, caching_on,
                                          settings, clock, redis_url, where):
    if where == "redis":
        settings.REDIS_URL = redis_url
        subprocess.run(["redis-cli", "-u", redis_url, "FLUSHALL"], check=True, capture_output=True)
    settings.CACHE_LOCAL_BYTES = 0  # what the store keeps is what is served
    ask(other_client, "one")
    clock[0] += 1
    ask(client, "one")
    [size] = ([len(value) for key, value in redis_values(redis_url).items() if key.startswith(f"tollgate:cache:{tenant.pk}:")
               and not key.endswith((":index", ":sizes"))] if where == "redis"
              else CacheEntry.objects.filter(tenant=tenant).values_list("size", flat=True))
    settings.CACHE_MAX_BYTES_PER_TENANT = 2 * size + size // 2  # two answers of this size, not three
    for text in ("two", "three"):
        clock[0] += 1
        ask(client, text)
    assert [ask(client, text) for text in ("three", "two", "one")] == ["hit", "hit", "miss"]  # the oldest went
    assert ask(other_client, "one") == "hit"  # another tenant's bytes are its own


def redis_values(url: str) -> dict[str, str]:
    return {key: subprocess.run(["redis-cli", "-u", url, "GET", key], check=True, capture_output=True,
                                text=True).stdout.rstrip("\n") for key in redis_keys(url)
            if not key.endswith((":index", ":sizes"))}


def test_an_answer_larger_than_the_entry_bound_is_not_kept(client, fake_openai, tenant, caching_on, settings):
    settings.CACHE_MAX_ENTRY_BYTES = 100
    assert [ask(client) for _ in range(2)] == ["miss", "miss"]
    assert not CacheEntry.objects.exists()


def test_expired_entries_are_dropped_as_new_ones_are_kept(client, fake_openai, tenant, caching_on, clock):
    ask(client, "one")
    clock[0] += 3601
    ask(client, "two")
    assert list(CacheEntry.objects.filter(tenant=tenant).values_list("stored_at", flat=True)) == [clock[0]]


def test_a_process_serves_an_answer_it_has_seen_without_reading_the_store(client, fake_openai, caching_on,
                                                                          monkeypatch):
    reads = []
    real = store.read_entry
    monkeypatch.setattr(store, "read_entry", lambda *args: reads.append(args) or real(*args))
    assert [ask(client) for _ in range(3)] == ["miss", "hit", "hit"]
    assert len(reads) == 1  # the miss looked; the hits were this process's own copy
    store.forget_local_copies()  # as another worker, which has not seen it
    assert ask(client) == "hit" and len(reads) == 2



def test_a_process_copy_is_served_a_few_seconds_then_the_store_is_asked_again(client, fake_openai, tenant,
                                                                               caching_on, clock, settings):
    def answer(**options) -> tuple[str, str]:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}], temperature=0, **options)
        return raw.headers["x-tollgate-cache"], raw.parse().choices[0].message.content

    fake_openai.enqueue(Reply(text="first"), Reply(text="refreshed"))
    assert answer() == ("miss", "first")
    [(key, (old_copy, _))] = store._local.items()
    assert answer(extra_headers={"Cache-Control": "no-cache"}) == ("bypass", "refreshed")  # not read, kept anew...
    store.copy_locally(*key, old_copy)  # ...while another worker still holds the first answer, as this one now
    assert answer() == ("hit", "first")
    clock[0] += settings.CACHE_LOCAL_SECONDS + 1
    assert answer() == ("hit", "refreshed")  # its copy aged out: the shared store answered


def test_an_expired_copy_does_not_hide_a_fresh_answer_in_the_store(client, fake_openai, tenant, caching_on, clock):
    assert ask(client) == "miss"
    [(key, (text, _))] = store._local.items()
    stale = store.from_json(text)
    stale.expires_at = clock[0] - 1
    store.copy_locally(*key, store.to_json(stale))
    assert ask(client) == "hit" and len(fake_openai.requests) == 1  # the store's own, still fresh
