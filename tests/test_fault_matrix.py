"""Every fault a provider shows either ends in an answer (retried, or from the fallback) or in a
clear error, and leaves exactly one usage record with the right status, tokens and cost."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from billing.models import Plan
from providers import router
from providers.models import Model, Provider
from tests.conftest import serve_provider_from
from tests.fakes.openai_upstream import FakeOpenAI, Reply
from usage.models import MonthlySpend, UsageRecord

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}

# fault -> the replies scripted, what the client gets, attempts made, model that served
FAULTS = {
    "429 with retry-after": ([Reply(status=429, error_type="rate_limit_error", headers={"retry-after-ms": "10"}),
                              Reply()], 200, 2, "openai/gpt-4o-mini"),
    "500 then success": ([Reply(status=500), Reply()], 200, 2, "openai/gpt-4o-mini"),
    "529 overloaded on both tries falls back": ([Reply(status=529), Reply(status=529)], 200, 3,
                                                "openai/gpt-4.1-mini"),
    "503 on every try falls back": ([Reply(status=503), Reply(status=503)], 200, 3, "openai/gpt-4.1-mini"),
    "connection reset": ([Reply(reset=True)], 200, 2, "openai/gpt-4o-mini"),
    "malformed JSON": ([Reply(malformed=True)], 200, 2, "openai/gpt-4o-mini"),
    "hangs past the first-byte limit": ([Reply(hold=True)], 200, 2, "openai/gpt-4o-mini"),
    "400 is not retried": ([Reply(status=400, error_type="invalid_request_error")], 400, 1, "openai/gpt-4o-mini"),
}


@pytest.fixture
def resilient(catalog, settings):
    settings.UPSTREAM_MAX_RETRIES = 1
    Provider.objects.filter(slug="openai").update(first_byte_timeout=0.3)
    Model.objects.filter(public_id="openai/gpt-4o-mini").update(fallbacks=["openai/gpt-4.1-mini"])


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_fault(gateway_url, api_key, tenant, other_tenant, fake_openai, resilient, fault, streamed):
    replies, status, attempts, served = FAULTS[fault]
    fake_openai.enqueue(*replies)
    response = httpx.post(f"{gateway_url}/v1/chat/completions", json={**BODY, "stream": streamed},
                          headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    fake_openai.release()
    assert response.status_code == status, response.text
    assert response.headers["x-tollgate-attempts"] == str(attempts)
    assert response.headers["x-tollgate-served-model"] == served
    if status == 200:
        text = response.text
        assert ("data: [DONE]" in text) if streamed else (response.json()["choices"][0]["message"]["content"])
    record = UsageRecord.objects.get(tenant=tenant)
    assert record.model == served
    assert record.outcome == ("ok" if status == 200 else "error")
    assert (record.output_tokens > 0) == (status == 200)
    assert (record.cost > 0) == (status == 200)
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled) == (0, record.cost)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_200_concurrent_requests_while_a_deployment_flaps_all_end_well_and_bill_exactly(
        gateway_url, api_key, tenant, fake_openai, resilient):
    Plan.objects.filter(slug="pro").update(requests_per_minute=10_000)
    Provider.objects.filter(slug="openai").update(first_byte_timeout=10)  # busy machine, no hang here
    fake_openai.flap("gpt-4o-mini")  # the primary fails every other call; its fallback is healthy

    def call(n: int) -> int:
        response = httpx.post(f"{gateway_url}/v1/chat/completions", json={**BODY, "stream": n % 3 == 0},
                              headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
        return response.status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(call, range(200)))
    assert statuses == [200] * 200
    records = UsageRecord.objects.filter(tenant=tenant)
    assert records.count() == 200 and records.filter(outcome="ok").count() == 200
    assert {record.model for record in records} == {"openai/gpt-4o-mini", "openai/gpt-4.1-mini"}
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.reserved == 0
    assert ledger.settled == sum(record.cost for record in records)


def test_killing_a_provider_during_load_loses_no_request_and_bills_none_twice(
        gateway_url, api_key, tenant, fake_openai, resilient, settings):
    """The primary's server goes away mid-run; every request still ends well through the
    fallback (another provider, another server), and each is billed exactly once."""
    Plan.objects.filter(slug="pro").update(requests_per_minute=10_000)
    Provider.objects.filter(slug="openai").update(first_byte_timeout=10)
    backup = FakeOpenAI().start()
    try:
        serve_provider_from("groq", backup.base_url)
        Model.objects.filter(public_id="openai/gpt-4o-mini").update(fallbacks=["groq/llama-3.1-8b-instant"])
        router.forget_catalog()
        fake_openai.enqueue(*[Reply(chunk_delay=0.01) for _ in range(40)])

        def call(n: int) -> int:
            if n == 60:
                fake_openai.stop()  # the primary provider dies with requests in flight
            response = httpx.post(f"{gateway_url}/v1/chat/completions", json={**BODY, "stream": n % 2 == 0},
                                  headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
            return response.status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(call, range(150)))
    finally:
        backup.stop()
        fake_openai.start(port=fake_openai.port)  # back for the tests after this one
    assert statuses == [200] * 150
    records = UsageRecord.objects.filter(tenant=tenant)
    assert records.count() == 150
    assert records.filter(model="groq/llama-3.1-8b-instant").exists()
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.reserved == 0 and ledger.settled == sum(record.cost for record in records)
