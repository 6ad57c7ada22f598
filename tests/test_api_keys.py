"""API keys: shown once, stored as prefix + keyed hash, refused when absent, wrong, revoked or expired."""

from datetime import timedelta

import openai
import pytest
from django.utils import timezone

from gateway.api_keys import hash_key, issue_api_key, revoke_api_key
from gateway.models import ApiKey
from usage.models import UsageRecord


def sdk(gateway_url, key):
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=key, max_retries=0)


def ask(client):
    return client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "hi"}])


def test_key_is_stored_only_as_prefix_and_keyed_hash(tenant):
    issued = issue_api_key(tenant, name="ci")
    row = ApiKey.objects.get(pk=issued.api_key.pk)
    assert issued.raw.startswith(f"tg-{row.prefix}-")
    assert row.hashed == hash_key(issued.raw) and issued.raw not in row.hashed
    stored = " ".join(str(value) for value in ApiKey.objects.filter(pk=row.pk).values().get().values())
    assert issued.raw.split("-", 2)[2] not in stored


@pytest.mark.parametrize("key", ["", "sk-not-ours", "tg-000000000000-guess", "tg-"])
def test_rejects_missing_or_unknown_key(gateway_url, catalog, key):
    with pytest.raises(openai.AuthenticationError) as caught:
        ask(sdk(gateway_url, key or "x"))
    assert caught.value.body["code"] == "invalid_api_key"


def test_rejects_known_prefix_with_wrong_secret(gateway_url, api_key):
    prefix = "-".join(api_key.split("-")[:2])  # "tg-<lookup prefix>"
    with pytest.raises(openai.AuthenticationError):
        ask(sdk(gateway_url, prefix + "-wrongsecret"))


def test_rejects_revoked_key_at_once(gateway_url, api_key, tenant):
    client = sdk(gateway_url, api_key)
    ask(client)  # warms the key cache
    revoke_api_key(ApiKey.objects.get(tenant=tenant))
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        ask(client)
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1


def test_rejects_expired_key(gateway_url, tenant):
    issued = issue_api_key(tenant, name="old", expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(openai.AuthenticationError, match="expired"):
        ask(sdk(gateway_url, issued.raw))


def test_key_of_one_tenant_never_bills_another(gateway_url, api_key, other_api_key, tenant, other_tenant):
    ask(sdk(gateway_url, other_api_key))
    assert UsageRecord.objects.get().tenant == other_tenant
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_records_last_use(gateway_url, api_key, tenant):
    ask(sdk(gateway_url, api_key))
    assert ApiKey.objects.get(tenant=tenant).last_used_at is not None
