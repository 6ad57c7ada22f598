"""A tenant's own provider key: the call is made with it and billed the plan's fee, never our price."""

from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import Plan
from gateway.models import TenantProviderKey
from providers import router
from providers.models import Deployment, Model, Provider
from tests.conftest import serve_provider_from
from usage.models import UsageRecord

HELLO = [{"role": "user", "content": "hello"}]
TENANT_KEY = "sk-tenant-own-key"


@pytest.fixture
def fee(catalog):
    Plan.objects.filter(slug="pro").update(byok_fee_per_request=Decimal("0.0005"))


def test_key_sent_in_a_header_is_used_and_billed_the_plan_fee(client, fake_openai, fee, tenant, other_tenant):
    fake_openai.api_key = TENANT_KEY  # the provider accepts the tenant's key, not ours
    try:
        answer = client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO,
                                                extra_headers={"x-provider-key": TENANT_KEY})
    finally:
        fake_openai.api_key = "sk-fake-upstream"
    assert answer.choices[0].message.content == "Hello from the fake upstream."
    assert fake_openai.requests[-1]["headers"]["Authorization"] == f"Bearer {TENANT_KEY}"
    record = UsageRecord.objects.get(tenant=tenant)
    assert record.byok and record.cost == Decimal("0.0005")
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_stored_tenant_key_is_used_for_its_provider_only(client, fake_openai, fee, tenant, other_client):
    stored = TenantProviderKey(tenant=tenant, provider="openai")
    stored.set_secret(TENANT_KEY)
    stored.save()
    assert TENANT_KEY not in stored.secret_encrypted
    fake_openai.api_key = TENANT_KEY
    try:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
        assert client.chat.completions.create(model="demo/echo", messages=HELLO)  # other providers: ours
        with pytest.raises(openai.InternalServerError):  # another tenant's call still uses our key
            other_client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    finally:
        fake_openai.api_key = "sk-fake-upstream"
    records = {r.model: r for r in UsageRecord.objects.filter(tenant=tenant)}
    assert records["openai/gpt-4o-mini"].byok and not records["demo/echo"].byok


def test_a_refused_tenant_key_never_falls_back_to_ours(gateway_url, api_key, fake_openai, fee, tenant):
    Model.objects.filter(public_id="openai/gpt-4o-mini").update(fallbacks=["openai/gpt-4.1-mini"])
    response = httpx.post(f"{gateway_url}/v1/chat/completions",
                          json={"model": "openai/gpt-4o-mini", "messages": HELLO},
                          headers={"Authorization": f"Bearer {api_key}", "x-provider-key": "sk-wrong"})
    assert response.status_code == 400  # the tenant's key, the tenant's to fix
    assert response.json()["error"]["code"] == "provider_key_refused"
    assert "refused your own provider key" in response.json()["error"]["message"]
    assert "sk-wrong" not in response.text
    assert [r["headers"]["Authorization"] for r in fake_openai.requests] == ["Bearer sk-wrong"]
    assert UsageRecord.objects.get(tenant=tenant).cost == 0  # a failed call is not charged the fee



def test_a_tenants_bad_key_does_not_open_the_breaker_for_everyone(gateway_url, api_key, client, fake_openai, fee,
                                                                   settings):
    settings.BREAKER_FAILURES = 2
    for _ in range(3):
        response = httpx.post(f"{gateway_url}/v1/chat/completions",
                              json={"model": "openai/gpt-4o-mini", "messages": HELLO},
                              headers={"Authorization": f"Bearer {api_key}", "x-provider-key": "sk-wrong"})
        assert response.status_code == 400
    assert client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)  # our key: unaffected


def test_the_key_goes_only_to_the_provider_the_model_is_listed_under(client, fake_openai, fee, tenant):
    serve_provider_from("groq", fake_openai.base_url)
    Deployment.objects.create(model=Model.objects.get(public_id="openai/gpt-4o-mini"),
                              provider=Provider.objects.get(slug="groq"), upstream_name="on-groq", weight=3)
    router.forget_catalog()
    fake_openai.api_key = TENANT_KEY
    try:
        for _ in range(4):
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO,
                                           extra_headers={"x-provider-key": TENANT_KEY})
    finally:
        fake_openai.api_key = "sk-fake-upstream"
    assert {r["body"]["model"] for r in fake_openai.requests} == {"gpt-4o-mini"}  # never sent to groq
    assert all(r.byok and r.provider == "openai" for r in UsageRecord.objects.filter(tenant=tenant))
