"""The tenant turns the cache on and off, for the whole tenant or per key, in the dashboard and the
management API; both show the hit rate and the money saved. Members read, owners and admins
change; another tenant's owner sees nothing of it."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from caching.models import KeyCache, TenantCache
from gateway.api_keys import issue_api_key
from gateway.models import Membership
from tests.conftest import signed_in, wait_for
from usage.models import UsageRecord

MODEL = "openai/gpt-4o-mini"
PAGE = "/t/alice-co/cache/"
API = "/api/tenants/alice-co/cache/"


def ask(client, **options):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], temperature=0, **options)
    return raw.headers["x-tollgate-cache"]


def member_of(tenant, email: str, role: str) -> Client:
    user = get_user_model().objects.create_user(username=email, email=email)
    Membership.objects.create(tenant=tenant, user=user, role=role)
    return signed_in(email)


def api_client(email: str) -> Client:
    browser = Client()
    browser.force_login(get_user_model().objects.get(email=email))
    return browser


def test_an_owner_turns_the_cache_on_in_the_dashboard_and_sees_the_hit_rate_and_savings(client, tenant, other_tenant,
                                                                                       fake_openai):
    alice = signed_in("alice@example.com")
    page = alice.get(PAGE)
    assert page.status_code == 200 and 'id="hit-rate">—' in page.content.decode()
    assert ask(client) == "bypass"

    saved = alice.post(PAGE, {"enabled": "on", "ttl_seconds": "600"})
    assert saved.status_code == 302
    assert TenantCache.objects.get(tenant=tenant).enabled
    assert [ask(client) for _ in range(3)] == ["miss", "hit", "hit"]
    original = UsageRecord.objects.filter(tenant=tenant, ending="completed").first().cost
    wait_for(lambda: "66.7 %" in alice.get(PAGE).content.decode(), what="the hit rate on the page")
    html = alice.get(PAGE).content.decode()
    assert 'id="cache-hits">2<' in html and 'id="cache-misses">1<' in html
    assert f"${(original * 2).quantize(Decimal('0.0001'))}" in html

    charlie = signed_in("charlie@example.com")
    assert charlie.get(PAGE).status_code == 404
    assert charlie.post(PAGE, {"enabled": ""}).status_code == 404
    assert TenantCache.objects.get(tenant=tenant).enabled


def test_members_read_the_page_and_only_owners_and_admins_change_it(tenant):
    member = member_of(tenant, "bob@example.com", "member")
    assert member.get(PAGE).status_code == 200
    assert member.post(PAGE, {"enabled": "on", "ttl_seconds": "60"}).status_code == 403
    assert not TenantCache.objects.filter(tenant=tenant).exists()
    admin = member_of(tenant, "dana@example.com", "admin")
    assert admin.post(PAGE, {"enabled": "on", "ttl_seconds": "60"}).status_code == 302
    assert TenantCache.objects.get(tenant=tenant).ttl_seconds == 60


def test_a_key_is_switched_on_its_own_in_the_dashboard(sdk_for, tenant, other_tenant, fake_openai):
    issued = issue_api_key(tenant, name="batch jobs")
    alice = signed_in("alice@example.com")
    assert alice.post(f"{PAGE}keys/{issued.api_key.pk}/", {"mode": "on"}).status_code == 302
    assert KeyCache.objects.get(api_key=issued.api_key).enabled
    assert [ask(sdk_for(issued.raw)) for _ in range(2)] == ["miss", "hit"]
    assert 'value="on" selected' in alice.get(PAGE).content.decode()

    other_key = issue_api_key(other_tenant, name="charlie's")
    assert alice.post(f"{PAGE}keys/{other_key.api_key.pk}/", {"mode": "on"}).status_code == 404
    assert not KeyCache.objects.filter(api_key=other_key.api_key).exists()


def test_the_management_api_reads_and_changes_the_settings(client, tenant, other_tenant, fake_openai):
    alice = api_client("alice@example.com")
    body = alice.get(API).json()
    assert (body["available"], body["semantic_available"], body["enabled"], body["hit_price"]) == (
        True, False, False, "0.000000")
    assert body["stats"] == {"days": 30, "hits": 0, "misses": 0, "hit_rate": None, "saved": "0E-10"} or \
        Decimal(body["stats"]["saved"]) == 0

    changed = alice.patch(API, {"enabled": True, "ttl_seconds": 120}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["enabled"] and changed.json()["ttl_seconds"] == 120
    assert [ask(client) for _ in range(2)] == ["miss", "hit"]
    stats = wait_for(lambda: (lambda s: s if s["hits"] == 1 else None)(alice.get(API).json()["stats"]),
                     what="the hit counted")
    assert (stats["misses"], stats["hit_rate"]) == (1, 0.5)

    assert alice.patch(API, {"ttl_seconds": 0}, content_type="application/json").status_code == 400
    charlie = api_client("charlie@example.com")
    assert charlie.get(API).status_code == 404
    assert charlie.patch(API, {"enabled": False}, content_type="application/json").status_code == 404


@pytest.mark.parametrize("mode, expected", [("on", True), ("off", False)])
def test_the_management_api_switches_one_key(tenant, mode, expected):
    issued = issue_api_key(tenant, name="worker")
    alice = api_client("alice@example.com")
    path = f"/api/tenants/alice-co/keys/{issued.api_key.pk}/cache/"
    assert alice.get(path).json() == {"key_id": issued.api_key.pk, "mode": "tenant"}
    assert alice.put(path, {"mode": mode}, content_type="application/json").json()["mode"] == mode
    assert KeyCache.objects.get(api_key=issued.api_key).enabled is expected
    assert alice.put(path, {"mode": "tenant"}, content_type="application/json").status_code == 200
    assert not KeyCache.objects.filter(api_key=issued.api_key).exists()
    assert alice.put(path, {"mode": "sometimes"}, content_type="application/json").status_code == 400
