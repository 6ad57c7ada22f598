"""/metrics counts what the answer cache did (hits, misses, bypasses by reason) and what hits
saved, under bounded labels: never a tenant or a key."""

import openai
import pytest

from billing.models import Plan
from gateway.cache_settings import update_cache_settings
from tests.test_metrics import scrape, value

GPT = "openai/gpt-4o-mini"
LOOKUPS = "tollgate_cache_requests_total"


def ask(client, **options):
    client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "hello"}], temperature=0,
                                   **options)


def test_hits_misses_and_bypasses_are_counted(gateway_url, client, fake_openai, tenant):
    update_cache_settings(tenant, enabled=True)
    before = scrape(gateway_url)
    ask(client)
    ask(client)
    ask(client, extra_headers={"Cache-Control": "no-store"})
    after = scrape(gateway_url)

    def grown(**labels) -> float:
        return value(after, LOOKUPS, **labels) - value(before, LOOKUPS, **labels)

    assert grown(kind="chat", result="miss", reason="") == 1
    assert grown(kind="chat", result="hit", reason="exact") == 1
    assert grown(kind="chat", result="bypass", reason="no-store") == 1
    assert value(after, "tollgate_cache_saved_usd_total") > value(before, "tollgate_cache_saved_usd_total")
    cache_lines = [line for line in after.splitlines() if line.startswith("tollgate_cache")]
    assert cache_lines and not any("alice" in line or "tenant" in line for line in cache_lines)


def test_a_hit_refused_at_admission_is_no_hit(gateway_url, client, fake_openai, tenant):
    update_cache_settings(tenant, enabled=True)
    Plan.objects.filter(slug="pro").update(requests_per_minute=1)
    ask(client)  # a miss, kept
    before = scrape(gateway_url)
    with pytest.raises(openai.RateLimitError) as refused:
        ask(client)
    assert refused.value.response.headers.get("x-tollgate-cache") != "hit"
    assert "age" not in refused.value.response.headers
    assert value(scrape(gateway_url), LOOKUPS, kind="chat", result="hit", reason="exact") == value(
        before, LOOKUPS, kind="chat", result="hit", reason="exact")
    assert len(fake_openai.requests) == 1
