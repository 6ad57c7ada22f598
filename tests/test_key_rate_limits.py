"""A key's own rate limits (tokens per minute, requests at once), set by an owner or admin in the
dashboard or the management API, shown back, and applied on /v1 when lower than the plan's. Members
cannot set them; Charlie (another tenant) never reaches Alice's keys."""

import httpx
from django.test import Client

from billing.models import Plan
from gateway.api_keys import issue_api_key
from gateway.models import ApiKey, Role
from tests.conftest import add_member, signed_in
from tests.test_management_api_keys import signed_in as signed_in_with_csrf

KEYS = "/api/tenants/alice-co/keys/"
BODY = {"model": "openai/gpt-4o-mini", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def patch(browser: Client, path: str, body: dict):
    return browser.patch(path, body, content_type="application/json")


def test_an_admin_sets_a_keys_limits_through_the_api_and_v1_applies_them(tenant, other_tenant, gateway_url):
    Plan.objects.filter(slug="pro").update(tokens_per_minute=100_000, max_concurrent_requests=10)
    raw = issue_api_key(tenant, name="backend").raw
    key = ApiKey.objects.get(name="backend")
    alice = signed_in_with_csrf("alice@example.com")
    answer = patch(alice, f"{KEYS}{key.pk}/", {"tokens_per_minute": 5000, "max_concurrent_requests": 2})
    assert answer.status_code == 200, answer.content
    assert answer.json()["tokens_per_minute"] == 5000 and answer.json()["max_concurrent_requests"] == 2
    assert alice.get(f"{KEYS}{key.pk}/").json()["tokens_per_minute"] == 5000
    called = httpx.post(f"{gateway_url}/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {raw}"})
    assert called.headers["x-ratelimit-limit-tokens"] == "5000"  # at once: this process forgot the cached key

    cleared = patch(alice, f"{KEYS}{key.pk}/", {"tokens_per_minute": None})  # back to the plan's; the other stays
    assert cleared.json()["tokens_per_minute"] is None and cleared.json()["max_concurrent_requests"] == 2
    called = httpx.post(f"{gateway_url}/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {raw}"})
    assert called.headers["x-ratelimit-limit-tokens"] == "100000"

    assert patch(alice, f"{KEYS}{key.pk}/", {"tokens_per_minute": 0}).status_code == 400
    charlie = signed_in_with_csrf("charlie@example.com")
    assert patch(charlie, f"{KEYS}{key.pk}/", {"tokens_per_minute": 1}).status_code == 404
    assert ApiKey.objects.get(pk=key.pk).tokens_per_minute is None


def test_a_key_is_created_with_its_limits_and_members_cannot_change_them(tenant, other_tenant):
    alice = signed_in_with_csrf("alice@example.com")
    created = alice.post(KEYS, {"name": "ci", "tokens_per_minute": 1000}, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["tokens_per_minute"] == 1000 and created.json()["max_concurrent_requests"] is None
    add_member(tenant, "mallory@example.com", Role.MEMBER)
    mallory = signed_in_with_csrf("mallory@example.com")
    refused = patch(mallory, f"{KEYS}{created.json()['id']}/", {"tokens_per_minute": 1})
    assert refused.status_code == 403
    assert ApiKey.objects.get(pk=created.json()["id"]).tokens_per_minute == 1000


def test_the_dashboard_sets_and_shows_a_keys_limits(tenant, other_tenant):
    Plan.objects.filter(slug="pro").update(tokens_per_minute=100_000)
    key = issue_api_key(tenant, name="backend").api_key
    alice = signed_in("alice@example.com")
    page = alice.get("/t/alice-co/keys/").content.decode()
    assert "100,000 (plan) tokens/min · none at once" in page
    saved = alice.post(f"/t/alice-co/keys/{key.pk}/limits/", {"tokens_per_minute": "2000", "max_concurrent_requests": ""})
    assert saved.status_code == 302
    key.refresh_from_db()
    assert key.tokens_per_minute == 2000 and key.max_concurrent_requests is None
    assert "2,000 tokens/min · none at once" in alice.get("/t/alice-co/keys/").content.decode()

    refused = alice.post(f"/t/alice-co/keys/{key.pk}/limits/", {"tokens_per_minute": "-5"}, follow=True)
    assert "keeps its limits" in refused.content.decode()
    key.refresh_from_db()
    assert key.tokens_per_minute == 2000
    charlie = signed_in("charlie@example.com")
    assert charlie.post(f"/t/alice-co/keys/{key.pk}/limits/", {"tokens_per_minute": "1"}).status_code == 404
    add_member(tenant, "mallory@example.com", Role.MEMBER)
    mallory = signed_in("mallory@example.com")
    assert mallory.post(f"/t/alice-co/keys/{key.pk}/limits/", {"tokens_per_minute": "1"}).status_code == 403
    key.refresh_from_db()
    assert key.tokens_per_minute == 2000


def test_the_dashboard_creates_a_key_with_its_limits(tenant, other_tenant):
    alice = signed_in("alice@example.com")
    created = alice.post("/t/alice-co/keys/", {"name": "ci", "expires_on": "", "allowed_models": "",
                                               "tokens_per_minute": "", "max_concurrent_requests": "3"})
    assert created.status_code == 201
    key = ApiKey.objects.get(name="ci")
    assert key.tokens_per_minute is None and key.max_concurrent_requests == 3
