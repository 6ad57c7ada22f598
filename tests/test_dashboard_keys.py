"""API keys on the dashboard: created with a name, expiry and allowed models, shown once, listed,
revoked with effect on /v1 at once; the plan's key limit and the role rules hold. Charlie (another
tenant) never sees or touches Alice's keys."""

import re
from datetime import timedelta

import openai
import pytest
from django.test import Client
from django.utils import timezone

from billing.models import Plan
from gateway.models import ApiKey, Role
from tests.conftest import add_member, signed_in

PASSWORD = "correct horse battery staple"


def create_key(browser: Client, name: str, tenant_slug: str = "alice-co", **fields):
    return browser.post(f"/t/{tenant_slug}/keys/", {"name": name, "expires_on": "", "allowed_models": "", **fields})


def raw_key_in(page) -> str:
    return re.search(r'<code id="new-key" data-testid="new-key">(tg-[^<]+)</code>', page.content.decode()).group(1)


def ask(sdk, model: str = "demo/echo"):
    return sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def test_create_a_key_shown_once_that_works_on_v1(tenant, other_tenant, sdk_for):
    alice = signed_in("alice@example.com")
    expires_on = (timezone.now() + timedelta(days=30)).date()
    created = create_key(alice, "ci runner", expires_on=expires_on.isoformat())
    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    raw = raw_key_in(created)
    assert 'data-copy="#new-key"' in created.content.decode()
    assert ask(sdk_for(raw)).choices[0].message.content

    key = ApiKey.objects.get(tenant=tenant, name="ci runner")
    assert key.expires_at.date() == expires_on + timedelta(days=1)  # through the end of that day, UTC
    assert key.created_by.email == "alice@example.com" and key.allowed_models == []
    listing = alice.get("/t/alice-co/keys/").content.decode()
    assert raw not in listing  # shown once, never again
    row = re.search(r'<tr data-testid="key-ci runner".*?</tr>', listing, re.S).group(0)
    assert f"tg-{key.prefix}-…" in row and "alice@example.com" in row and ">active<" in row
    assert f"{expires_on + timedelta(days=1):%Y-%m-%d} 00:00 UTC" in row

    # Charlie: no such page, no such key.
    charlie = signed_in("charlie@example.com")
    assert charlie.get("/t/alice-co/keys/").status_code == 404
    assert create_key(charlie, "sneaky").status_code == 404
    assert "ci runner" not in charlie.get("/t/charlie-co/keys/").content.decode()
    assert charlie.post(f"/t/charlie-co/keys/{key.pk}/revoke/").status_code == 404
    assert charlie.post(f"/t/alice-co/keys/{key.pk}/revoke/").status_code == 404
    assert ask(sdk_for(raw)).choices[0].message.content


def test_revoking_stops_the_key_on_v1_at_once(tenant, other_tenant, sdk_for, other_client):
    alice = signed_in("alice@example.com")
    raw = raw_key_in(create_key(alice, "laptop"))
    sdk = sdk_for(raw)
    assert ask(sdk).choices  # now cached by the gateway
    key = ApiKey.objects.get(tenant=tenant, name="laptop")
    answer = alice.post(f"/t/alice-co/keys/{key.pk}/revoke/", follow=True)
    assert "Key laptop (tg-" in answer.content.decode() and "was revoked" in answer.content.decode()
    with pytest.raises(openai.AuthenticationError, match="API key 'laptop' has been revoked"):
        ask(sdk)
    row = re.search(r'<tr data-testid="key-laptop".*?</tr>', answer.content.decode(), re.S).group(0)
    assert ">revoked<" in row and "Revoke laptop" not in row
    assert ask(other_client).choices  # Charlie's key untouched


def test_allowed_models_limit_what_the_key_may_call(tenant, other_tenant, sdk_for):
    alice = signed_in("alice@example.com")
    raw = raw_key_in(create_key(alice, "demo only", allowed_models="demo/*"))
    assert ApiKey.objects.get(name="demo only").allowed_models == ["demo/*"]
    sdk = sdk_for(raw)
    assert ask(sdk, "demo/echo").choices
    with pytest.raises(openai.PermissionDeniedError):
        ask(sdk, "openai/gpt-4o-mini")
    assert "demo/*" in alice.get("/t/alice-co/keys/").content.decode()

    refused = create_key(alice, "typo", allowed_models="opneai/*, demo/echo")
    assert refused.status_code == 400
    assert "No model on your plan matches opneai/*: see the Models page for the ids." in refused.content.decode()
    past = create_key(alice, "old", expires_on=(timezone.now() - timedelta(days=2)).date().isoformat())
    assert past.status_code == 400 and "That day is past" in past.content.decode()
    assert not ApiKey.objects.filter(name__in=["typo", "old"]).exists()
    assert "demo/*" not in signed_in("charlie@example.com").get("/t/charlie-co/keys/").content.decode()


def test_the_plans_key_limit_is_enforced_with_a_clear_message(tenant, other_tenant, api_key):
    Plan.objects.filter(slug="pro").update(max_keys=2)
    alice = signed_in("alice@example.com")
    assert create_key(alice, "second").status_code == 201
    refused = create_key(alice, "third")
    assert refused.status_code == 409
    assert ("Tenant alice-co has 2 active keys, the most plan Pro allows. Revoke a key or upgrade the plan."
            in refused.content.decode())
    assert "2 of 2 active keys" in refused.content.decode()
    second = ApiKey.objects.get(tenant=tenant, name="second")
    alice.post(f"/t/alice-co/keys/{second.pk}/revoke/")
    assert create_key(alice, "third").status_code == 201
    assert create_key(signed_in("charlie@example.com"), "his", tenant_slug="charlie-co").status_code == 201
    assert signed_in("charlie@example.com").post(f"/t/alice-co/keys/{second.pk}/revoke/").status_code == 404


def test_members_manage_their_own_keys_only_and_billing_members_none(tenant, other_tenant, api_key):
    add_member(tenant, "bob@example.com", Role.MEMBER)
    add_member(tenant, "pay@example.com", Role.BILLING)
    bob = signed_in("bob@example.com")
    assert create_key(bob, "bob's").status_code == 201
    alices = ApiKey.objects.get(tenant=tenant, name="alice laptop")
    bobs = ApiKey.objects.get(tenant=tenant, name="bob's")
    page = bob.get("/t/alice-co/keys/").content.decode()
    assert "Revoke alice laptop" not in page and "Revoke bob&#x27;s" in page
    refused = bob.post(f"/t/alice-co/keys/{alices.pk}/revoke/")
    assert refused.status_code == 403 and "Members revoke only the keys they created" in refused.content.decode()
    assert ApiKey.objects.get(pk=alices.pk).revoked_at is None
    assert bob.post(f"/t/alice-co/keys/{bobs.pk}/revoke/").status_code == 302
    assert ApiKey.objects.get(pk=bobs.pk).revoked_at is not None

    refused = create_key(bob, "bob admin", management="on")
    assert refused.status_code == 400
    assert "Only owners and admins create keys with management API access." in refused.content.decode()
    assert create_key(signed_in("alice@example.com"), "automation", management="on").status_code == 201
    assert ApiKey.objects.get(tenant=tenant, name="automation").scopes == ["inference", "management"]
    assert ApiKey.objects.get(tenant=tenant, name="bob's").scopes == ["inference"]

    payer = signed_in("pay@example.com")
    refused = payer.get("/t/alice-co/keys/")
    assert refused.status_code == 403
    assert "this page is for owner, admin or member members" in refused.content.decode()
    assert create_key(payer, "nope").status_code == 403
    # Owners and admins revoke anyone's key.
    assert signed_in("alice@example.com").post(f"/t/alice-co/keys/{alices.pk}/revoke/").status_code == 302
    assert signed_in("charlie@example.com").get("/t/alice-co/keys/").status_code == 404


def test_last_used_shows_after_a_call(tenant, other_tenant, client, api_key):
    alice = signed_in("alice@example.com")
    row = lambda: re.search(r'<tr data-testid="key-alice laptop".*?</tr>',  # noqa: E731
                            alice.get("/t/alice-co/keys/").content.decode(), re.S).group(0)
    assert "never" in row().split('data-label="Last used">')[1][:10]
    ask(client)
    used = ApiKey.objects.get(tenant=tenant, name="alice laptop").last_used_at
    assert used is not None
    assert f"{used:%Y-%m-%d %H:%M}" in row()
    assert signed_in("charlie@example.com").get("/t/alice-co/keys/").status_code == 404
