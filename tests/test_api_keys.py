"""API keys: shown once, stored as prefix + keyed hash, refused when absent, wrong, revoked or expired."""

from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone

from gateway.api_keys import hash_key, issue_api_key, revoke_api_key
from gateway.models import ApiKey
from usage.models import UsageRecord


def ask(client):
    return client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "hi"}])


def test_key_is_stored_only_as_prefix_and_keyed_hash(tenant):
    issued = issue_api_key(tenant, name="ci")
    row = ApiKey.objects.get(pk=issued.api_key.pk)
    assert issued.raw.startswith(f"tg-{row.prefix}-")
    assert row.hashed == hash_key(issued.raw) and issued.raw not in row.hashed
    stored = " ".join(str(value) for value in ApiKey.objects.filter(pk=row.pk).values().get().values())
    assert issued.raw.split("-", 2)[2] not in stored


@pytest.mark.parametrize("key", ["x", "sk-not-ours", "tg-000000000000-guess", "tg-"])
def test_rejects_unknown_key(sdk_for, catalog, key):
    with pytest.raises(openai.AuthenticationError) as caught:
        ask(sdk_for(key))
    assert caught.value.body["code"] == "invalid_api_key"


def test_rejects_a_request_without_a_key_saying_how_to_send_one(gateway_url, catalog):
    response = httpx.post(f"{gateway_url}/v1/chat/completions", json={"model": "demo/echo", "messages": []})
    assert response.status_code == 401
    assert "Authorization: Bearer tg-" in response.json()["error"]["message"]


def test_accepts_the_key_in_x_api_key_as_anthropic_clients_send_it(gateway_url, api_key):
    response = httpx.post(f"{gateway_url}/v1/chat/completions", headers={"x-api-key": api_key},
                          json={"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200


def test_rejects_known_prefix_with_wrong_secret(sdk_for, api_key):
    prefix = "-".join(api_key.split("-")[:2])  # "tg-<lookup prefix>"
    with pytest.raises(openai.AuthenticationError):
        ask(sdk_for(prefix + "-wrongsecret"))


def test_rejects_revoked_key_at_once(sdk_for, api_key, tenant):
    client = sdk_for(api_key)
    ask(client)  # warms the key cache
    revoke_api_key(ApiKey.objects.get(tenant=tenant))
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        ask(client)
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1


def test_rejects_expired_key(sdk_for, tenant):
    issued = issue_api_key(tenant, name="old", expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(openai.AuthenticationError, match="expired"):
        ask(sdk_for(issued.raw))


def test_key_of_one_tenant_never_bills_another(sdk_for, api_key, other_api_key, tenant, other_tenant):
    ask(sdk_for(other_api_key))
    assert UsageRecord.objects.get().tenant == other_tenant
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_records_last_use(sdk_for, api_key, tenant):
    ask(sdk_for(api_key))
    assert ApiKey.objects.get(tenant=tenant).last_used_at is not None
