"""The management API's keys: list, create (the raw key shown once), revoke (at once on /v1); who
may do which; session with CSRF or a management key; outsiders get 404."""

from datetime import timedelta

import httpx
import openai
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from billing.models import Plan
from gateway.api_keys import issue_api_key
from gateway.models import ApiKey, Membership, Role

CSRF_SECRET = "a" * 32  # a CSRF secret the test chooses: the cookie, and the header that must echo it


def signed_in(email: str) -> Client:
    """A browser signed in as ``email`` that sends the CSRF token on writes, as the dashboard does."""
    browser = Client(enforce_csrf_checks=True, headers={"X-CSRFToken": CSRF_SECRET})
    browser.cookies["csrftoken"] = CSRF_SECRET
    browser.force_login(get_user_model().objects.get(email=email))
    return browser


def with_key(raw: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {raw}"})


def add_member(tenant, email: str, role: str):
    user = get_user_model().objects.create_user(username=email, email=email)
    Membership.objects.create(tenant=tenant, user=user, role=role)
    return user


def management_key(tenant, name: str = "automation") -> str:
    return issue_api_key(tenant, name=name, scopes=["management"]).raw


def post(browser: Client, path: str, body: dict | None = None):
    return browser.post(path, body or {}, content_type="application/json")


def ask(sdk, model: str = "demo/echo"):
    return sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


KEYS = "/api/tenants/alice-co/keys/"


def test_owner_creates_a_key_shown_once_that_calls_v1(tenant, other_tenant, sdk_for):
    alice = signed_in("alice@example.com")
    answer = post(alice, KEYS, {"name": "ci", "allowed_models": ["demo/*"]})
    assert answer.status_code == 201, answer.content
    assert answer["Cache-Control"] == "no-store"
    created = answer.json()
    raw = created["key"]
    assert raw.startswith(created["prefix"].removesuffix("…"))
    assert created | {"key": None, "id": None, "prefix": None, "created_at": None} == {
        "id": None, "name": "ci", "prefix": None, "status": "active", "scopes": ["inference"],
        "allowed_models": ["demo/*"], "created_by": "alice@example.com", "created_at": None,
        "last_used_at": None, "expires_at": None, "revoked_at": None, "key": None,
        "tokens_per_minute": None, "max_concurrent_requests": None, "budget": None,
    }
    assert ask(sdk_for(raw)).choices[0].message.content

    listed = alice.get(KEYS)
    assert listed.status_code == 200
    assert [k["name"] for k in listed.json()] == ["ci"]
    assert raw not in listed.content.decode() and raw.split("-", 2)[2] not in listed.content.decode()
    assert alice.get(f"{KEYS}{created['id']}/").json()["name"] == "ci"

    # Charlie, signed in or with his tenant's management key, finds no such tenant.
    for outsider in (signed_in("charlie@example.com"), with_key(management_key(other_tenant))):
        assert outsider.get(KEYS).status_code == 404
        assert outsider.get(f"{KEYS}{created['id']}/").status_code == 404
        refused = post(outsider, KEYS, {"name": "intruder"})
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "not_found"
        assert "alice-co" in refused.json()["error"]["message"]
    assert not ApiKey.objects.filter(name="intruder").exists()
    # Nor does his own tenant's list show Alice's key.
    assert [k["name"] for k in signed_in("charlie@example.com").get("/api/tenants/charlie-co/keys/").json()] == [
        "automation"]


def test_a_signed_in_write_without_the_csrf_token_is_refused(tenant):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(get_user_model().objects.get(email="alice@example.com"))
    answer = post(browser, KEYS, {"name": "forged"})
    assert answer.status_code == 403
    assert "CSRF" in answer.json()["error"]["message"] and "X-CSRFToken" in answer.json()["error"]["message"]
    assert not ApiKey.objects.filter(name="forged").exists()
    assert browser.get(KEYS).status_code == 200  # reads need no token


def test_revoking_a_key_stops_it_on_v1_at_once(tenant, other_tenant, gateway_url, sdk_for, other_client):
    raw_admin = management_key(tenant)
    admin = httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {raw_admin}"})
    created = admin.post("/api/tenants/alice-co/keys/", json={"name": "laptop"})
    assert created.status_code == 201, created.text
    laptop = sdk_for(created.json()["key"])
    ask(laptop)  # the gateway now holds the key in its cache

    # Charlie cannot revoke it, by session or by his management key.
    revoke = f"/api/tenants/alice-co/keys/{created.json()['id']}/revoke/"
    assert post(signed_in("charlie@example.com"), revoke).status_code == 404
    charlie = httpx.post(f"{gateway_url}{revoke}", headers={"Authorization": f"Bearer {management_key(other_tenant)}"})
    assert charlie.status_code == 404
    assert ask(laptop).choices[0].message.content

    answer = admin.post(revoke)
    assert answer.status_code == 200
    assert answer.json()["status"] == "revoked" and answer.json()["revoked_at"]
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        ask(laptop)
    assert admin.post(revoke).status_code == 200  # again: nothing changes
    assert ask(other_client).choices[0].message.content  # Charlie's own key is untouched
    admin.close()


def test_a_member_manages_its_own_keys_only(tenant, other_tenant, api_key):
    add_member(tenant, "bob@example.com", Role.MEMBER)
    bob = signed_in("bob@example.com")
    own = post(bob, KEYS, {"name": "bob's"})
    assert own.status_code == 201
    assert own.json()["created_by"] == "bob@example.com"
    assert {k["name"] for k in bob.get(KEYS).json()} == {"bob's", "alice laptop"}

    alices = ApiKey.objects.get(name="alice laptop")
    refused = post(bob, f"{KEYS}{alices.pk}/revoke/")
    assert refused.status_code == 403
    assert "only the keys they created" in refused.json()["error"]["message"]
    assert ApiKey.objects.get(pk=alices.pk).revoked_at is None

    scoped = post(bob, KEYS, {"name": "admin key", "scopes": ["management"]})
    assert scoped.status_code == 403
    assert "owners and admins" in scoped.json()["error"]["message"]

    assert post(bob, f"{KEYS}{own.json()['id']}/revoke/").json()["status"] == "revoked"
    # Charlie's tenant's keys are out of reach.
    charlies = issue_api_key(other_tenant, name="charlie ci").api_key
    assert post(bob, f"/api/tenants/charlie-co/keys/{charlies.pk}/revoke/").status_code == 404
    assert post(bob, f"{KEYS}{charlies.pk}/revoke/").status_code == 404
    assert ApiKey.objects.get(pk=charlies.pk).revoked_at is None


def test_an_admin_revokes_any_key_and_a_billing_member_sees_none(tenant, other_tenant, api_key):
    add_member(tenant, "ada@example.com", Role.ADMIN)
    add_member(tenant, "bill@example.com", Role.BILLING)
    alices = ApiKey.objects.get(name="alice laptop")
    assert post(signed_in("ada@example.com"), f"{KEYS}{alices.pk}/revoke/").json()["status"] == "revoked"

    bill = signed_in("bill@example.com")
    for answer in (bill.get(KEYS), post(bill, KEYS, {"name": "x"})):
        assert answer.status_code == 403
        assert "is billing" in answer.json()["error"]["message"]
    assert signed_in("charlie@example.com").get(KEYS).status_code == 404


def test_a_management_key_reaches_only_its_own_tenant(tenant, other_tenant, api_key, sdk_for, gateway_url):
    raw = management_key(tenant)
    alice_admin = with_key(raw)
    assert alice_admin.get("/api/tenants/").json() == [{"slug": "alice-co", "name": "alice-co", "role": "admin"}]
    assert alice_admin.get("/api/tenants/alice-co/").json()["role"] == "admin"
    created = post(alice_admin, KEYS, {"name": "deploy", "scopes": ["inference", "management"]})
    assert created.status_code == 201  # no CSRF for a key: it is not a cookie
    assert created.json()["scopes"] == ["inference", "management"] and created.json()["created_by"] is None

    for path in ("/api/tenants/charlie-co/", "/api/tenants/charlie-co/keys/"):
        answer = alice_admin.get(path)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert post(alice_admin, "/api/tenants/charlie-co/keys/", {"name": "intruder"}).status_code == 404
    assert not ApiKey.objects.filter(tenant=other_tenant, name="intruder").exists()

    # A management-only key cannot call /v1; an inference-only key cannot call /api/.
    with pytest.raises(openai.PermissionDeniedError, match="needs 'inference'") as caught:
        ask(sdk_for(raw))
    assert caught.value.body["code"] == "missing_scope"
    refused = httpx.get(f"{gateway_url}/api/tenants/alice-co/keys/", headers={"Authorization": f"Bearer {api_key}"})
    assert refused.status_code == 403
    assert "'management' scope" in refused.json()["error"]["message"]


@pytest.mark.parametrize("header", ["Bearer tg-000000000000-guess", "Bearer sk-not-ours", None])
def test_a_call_without_valid_credentials_gets_401(tenant, gateway_url, header):
    headers = {"Authorization": header} if header else {}
    answer = httpx.get(f"{gateway_url}/api/tenants/alice-co/keys/", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.json()["error"]["code"] in ("authentication_failed", "not_authenticated")
    assert answer.json()["error"]["message"]


def test_revoked_or_expired_management_keys_are_refused(tenant):
    revoked = issue_api_key(tenant, name="old", scopes=["management"])
    ApiKey.objects.filter(pk=revoked.api_key.pk).update(revoked_at=timezone.now())
    expired = issue_api_key(tenant, name="gone", scopes=["management"],
                            expires_at=timezone.now() - timedelta(minutes=1))
    assert "revoked" in with_key(revoked.raw).get(KEYS).json()["error"]["message"]
    assert "expired" in with_key(expired.raw).get(KEYS).json()["error"]["message"]


def test_bad_key_requests_say_what_was_wrong(tenant, other_tenant):
    alice = signed_in("alice@example.com")
    answer = post(alice, KEYS, {"name": "", "expires_at": "2001-01-01T00:00:00Z",
                                "allowed_models": ["nope/*"], "scopes": ["everything"]})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"name", "expires_at", "allowed_models", "scopes"}
    assert "past" in error["fields"]["expires_at"][0]
    assert "nope/*" in error["fields"]["allowed_models"][0]
    assert error["message"].startswith("Invalid request.") and "allowed_models:" in error["message"]
    assert not ApiKey.objects.filter(tenant=tenant).exists()


def test_an_empty_expiry_is_refused_and_null_or_none_means_never(tenant, other_tenant):
    alice = signed_in("alice@example.com")
    empty = post(alice, KEYS, {"name": "forever?", "expires_at": ""})
    assert empty.status_code == 400
    assert empty.json()["error"]["fields"] == {
        "expires_at": ["Empty: send a time (ISO 8601), or null or nothing for none."]}
    # A form cannot say empty from missing, so bodies are JSON only.
    as_form = alice.post(KEYS, {"name": "forever?", "expires_at": ""})
    assert as_form.status_code == 415 and as_form.json()["error"]["code"] == "unsupported_media_type"
    assert not ApiKey.objects.filter(name="forever?").exists()
    assert post(alice, KEYS, {"name": "null", "expires_at": None}).json()["expires_at"] is None
    assert post(alice, KEYS, {"name": "left out"}).json()["expires_at"] is None
    # Charlie's management key finds no such tenant, however it sends the expiry.
    assert post(with_key(management_key(other_tenant)), KEYS, {"name": "x", "expires_at": ""}).status_code == 404
    assert sorted(ApiKey.objects.filter(tenant=tenant).values_list("name", flat=True)) == ["left out", "null"]


def test_the_plans_key_limit_is_a_conflict(tenant, other_tenant):
    Plan.objects.filter(slug="pro").update(max_keys=1)
    alice = signed_in("alice@example.com")
    assert post(alice, KEYS, {"name": "one"}).status_code == 201
    answer = post(alice, KEYS, {"name": "two"})
    assert answer.status_code == 409
    assert "Revoke a key or upgrade the plan" in answer.json()["error"]["message"]
    # Charlie's tenant (same plan) has its own count.
    assert post(signed_in("charlie@example.com"), "/api/tenants/charlie-co/keys/", {"name": "one"}).status_code == 201


def test_a_key_restricted_to_models_and_expiring_works_until_then(tenant, other_tenant, sdk_for):
    alice = signed_in("alice@example.com")
    soon = timezone.now() + timedelta(hours=1)
    created = post(alice, KEYS, {"name": "demo only", "allowed_models": ["demo/*"], "expires_at": soon.isoformat()})
    assert created.status_code == 201
    sdk = sdk_for(created.json()["key"])
    assert ask(sdk).choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError):
        ask(sdk, "openai/gpt-4o-mini")
    assert signed_in("charlie@example.com").get(f"{KEYS}{created.json()['id']}/").status_code == 404
