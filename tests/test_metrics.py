"""GET /metrics: Prometheus text with requests, tokens and cost by bounded labels, readable only
with METRICS_TOKEN (when set) or from a loopback or private address."""

import ipaddress
from decimal import Decimal

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from billing.models import Plan
from gateway import api_keys
from tests.conftest import wait_for
from usage.models import UsageRecord

GPT = "openai/gpt-4o-mini"
HELLO = [{"role": "user", "content": "hello"}]
COMPLETION = {"endpoint": "/v1/chat/completions", "model": GPT, "provider": "openai", "status": "200",
              "outcome": "completed"}


def scrape(gateway_url: str, **headers: str) -> str:
    response = httpx.get(f"{gateway_url}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text


def value(text: str, sample_name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_a_completion_is_counted_with_its_tokens_and_cost_under_bounded_labels(gateway_url, client, api_key,
                                                                               other_client, tenant):
    before = scrape(gateway_url)
    answer = client.chat.completions.create(model=GPT, messages=HELLO)
    other_client.chat.completions.create(model=GPT, messages=HELLO)  # Charlie's request counts too

    def counted() -> str | None:
        text = scrape(gateway_url)
        grown = value(text, "tollgate_requests_total", **COMPLETION) - value(before, "tollgate_requests_total",
                                                                             **COMPLETION)
        return text if grown == 2 else None
    after = wait_for(counted, what="both requests to be counted")
    record = UsageRecord.objects.get(tenant=tenant)
    tokens = {"provider": "openai", "model": GPT}
    assert value(after, "tollgate_tokens_total", direction="input", **tokens) - value(
        before, "tollgate_tokens_total", direction="input", **tokens) == 2 * answer.usage.prompt_tokens
    assert value(after, "tollgate_tokens_total", direction="output", **tokens) - value(
        before, "tollgate_tokens_total", direction="output", **tokens) == 2 * answer.usage.completion_tokens
    cost = value(after, "tollgate_cost_usd_total", **tokens) - value(before, "tollgate_cost_usd_total", **tokens)
    assert cost == pytest.approx(2 * float(record.cost))
    assert value(after, "tollgate_request_seconds_count", endpoint="/v1/chat/completions") >= 2
    assert value(after, "tollgate_gateway_overhead_seconds_count", endpoint="/v1/chat/completions") >= 2
    assert value(after, "tollgate_provider_attempts_total", provider="openai", upstream_model="gpt-4o-mini",
                 result="ok") >= 2
    # Nothing that names a tenant, a key or a request
    for secret in (tenant.slug, "charlie-co", api_key, api_key.split("-")[1], record.request_id):
        assert secret not in after


def test_a_refusal_is_counted_by_its_reason(gateway_url, client, tenant):
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("0.000001"))
    api_keys.forget_keys()
    before = value(scrape(gateway_url), "tollgate_refusals_total", reason="insufficient_quota")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=GPT, messages=HELLO)
    assert value(scrape(gateway_url), "tollgate_refusals_total", reason="insufficient_quota") == before + 1
    wait_for(lambda: value(scrape(gateway_url), "tollgate_requests_total", endpoint="/v1/chat/completions",
                           status="429", outcome="insufficient_quota") >= 1, what="the refused request counted")


def test_with_a_token_metrics_need_it(gateway_url, settings, transactional_db):
    settings.METRICS_TOKEN = "metrics-token-of-32-characters-or-so"
    refused = httpx.get(f"{gateway_url}/metrics")
    assert refused.status_code == 401 and "tollgate_" not in refused.text
    assert httpx.get(f"{gateway_url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert scrape(gateway_url, Authorization=f"Bearer {settings.METRICS_TOKEN}").count("# TYPE") > 10


def test_without_a_token_only_private_addresses_may_read(gateway_url, settings, transactional_db):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]  # the test is a proxy: X-Forwarded-For counts
    public = httpx.get(f"{gateway_url}/metrics", headers={"X-Forwarded-For": "8.8.8.8"})
    assert public.status_code == 404 and "tollgate_" not in public.text
    assert scrape(gateway_url, **{"X-Forwarded-For": "10.1.2.3"}).count("# TYPE") > 10
    assert scrape(gateway_url).count("# TYPE") > 10  # loopback
