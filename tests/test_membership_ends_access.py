"""A member's keys end with their rights: removing someone revokes the keys they created in that
tenant (at once on /v1 and /api/); demoting someone below admin takes 'management' from their
keys; a management key acts only while its creator may manage the tenant, and what it creates
is its creator's. The same person's keys in Charlie's tenant, and Charlie's, are untouched."""

import openai
import pytest
from django.contrib.auth import get_user_model

from gateway.api_keys import issue_api_key
from gateway.models import ApiKey, Membership, Role
from tests.conftest import signed_in as dashboard_for
from tests.test_management_api_keys import ask, management_key, post, signed_in, with_key

KEYS = "/api/tenants/alice-co/keys/"
CHARLIE_KEYS = "/api/tenants/charlie-co/keys/"


def admin_of_both(tenant, other_tenant) -> Membership:
    """Ada: an admin of Alice's tenant, and of Charlie's too."""
    ada = get_user_model().objects.create_user(username="ada", email="ada@example.com")
    Membership.objects.create(tenant=other_tenant, user=ada, role=Role.ADMIN)
    return Membership.objects.create(tenant=tenant, user=ada, role=Role.ADMIN)


def issue(tenant, user, name: str, *scopes: str) -> str:
    return issue_api_key(tenant, name=name, created_by=user, scopes=list(scopes) or None).raw


def remove(how: str, membership: Membership) -> None:
    path = f"/api/tenants/alice-co/members/{membership.pk}/"
    if how == "api":
        assert signed_in("alice@example.com").delete(path).status_code == 204
    elif how == "leaving":
        assert signed_in(membership.user.email).delete(path).status_code == 204
    else:
        answer = dashboard_for("alice@example.com").post(f"/t/alice-co/members/{membership.pk}/remove/")
        assert answer.status_code == 302


def demote(how: str, membership: Membership, role: str) -> None:
    if how == "api":
        answer = signed_in("alice@example.com").patch(f"/api/tenants/alice-co/members/{membership.pk}/",
                                                      {"role": role}, content_type="application/json")
        assert answer.status_code == 200
    else:
        answer = dashboard_for("alice@example.com").post(f"/t/alice-co/members/{membership.pk}/role/", {"role": role})
        assert answer.status_code == 302


@pytest.mark.parametrize("how", ["api", "dashboard", "leaving"])
def test_removing_a_member_revokes_their_keys_at_once(tenant, other_tenant, sdk_for, how):
    ada = admin_of_both(tenant, other_tenant)
    laptop = issue(tenant, ada.user, "ada laptop")
    ci = issue(tenant, ada.user, "ada ci", "inference", "management")
    elsewhere = issue(other_tenant, ada.user, "ada at charlie", "inference", "management")
    alices = issue(tenant, get_user_model().objects.get(email="alice@example.com"), "alice laptop")
    charlies = issue(other_tenant, None, "charlie laptop")
    for raw in (laptop, ci):
        assert ask(sdk_for(raw)).choices[0].message.content  # now in the gateway's key cache
    assert with_key(ci).get(KEYS).status_code == 200

    remove(how, ada)

    for raw in (laptop, ci):
        with pytest.raises(openai.AuthenticationError, match="revoked"):
            ask(sdk_for(raw))
    refused = with_key(ci).get(KEYS)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    for raw in (alices, elsewhere, charlies):
        assert ask(sdk_for(raw)).choices[0].message.content
    assert with_key(elsewhere).get(CHARLIE_KEYS).status_code == 200
    assert not ApiKey.objects.filter(tenant=other_tenant, revoked_at__isnull=False).exists()


@pytest.mark.parametrize("how", ["api", "dashboard"])
def test_demoting_an_admin_takes_management_from_their_keys(tenant, other_tenant, sdk_for, how):
    ada = admin_of_both(tenant, other_tenant)
    ci = issue(tenant, ada.user, "ada ci", "inference", "management")
    robot = issue(tenant, ada.user, "ada robot", "management")
    elsewhere = issue(other_tenant, ada.user, "ada at charlie", "inference", "management")
    assert ask(sdk_for(ci)).choices[0].message.content
    assert with_key(ci).get(KEYS).status_code == 200

    demote(how, ada, Role.MEMBER)

    for raw in (ci, robot):
        refused = with_key(raw).get(KEYS)
        assert refused.status_code == 403 and "'management' scope" in refused.json()["error"]["message"]
    escape = post(with_key(ci), KEYS, {"name": "escape", "scopes": ["inference", "management"]})
    assert escape.status_code == 403 and not ApiKey.objects.filter(name="escape").exists()
    assert ask(sdk_for(ci)).choices[0].message.content  # still an inference key
    assert sorted(ApiKey.objects.filter(tenant=tenant).values_list("name", "scopes")) == [
        ("ada ci", ["inference"]), ("ada robot", [])]
    assert ApiKey.objects.get(tenant=other_tenant).scopes == ["inference", "management"]
    assert with_key(elsewhere).get(CHARLIE_KEYS).status_code == 200


def test_a_management_key_acts_only_while_its_creator_may_manage(tenant, other_tenant):
    ada = admin_of_both(tenant, other_tenant)
    ci = with_key(issue(tenant, ada.user, "ada ci", "management"))
    alices = with_key(issue(tenant, get_user_model().objects.get(email="alice@example.com"), "alice ci",
                            "management"))
    assert alices.get("/api/tenants/alice-co/").json()["role"] == "admin"  # an owner's key: no more than admin
    assert ci.get("/api/tenants/").json() == [{"slug": "alice-co", "name": "alice-co", "role": "admin"}]

    # The role changed outside the members workflows (the admin site edits the row), so the
    # key kept its scope: the creator's current role still decides.
    Membership.objects.filter(pk=ada.pk).update(role=Role.MEMBER)
    refused = post(ci, KEYS, {"name": "escape", "scopes": ["inference", "management"]})
    assert refused.status_code == 401
    assert "who created API key 'ada ci' no longer may manage alice-co" in refused.json()["error"]["message"]
    assert not ApiKey.objects.filter(name="escape").exists()
    assert ci.get("/api/tenants/").status_code == 401

    Membership.objects.filter(pk=ada.pk).update(role=Role.ADMIN)
    assert ci.get(KEYS).status_code == 200
    Membership.objects.filter(pk=ada.pk).delete()
    assert ci.get(KEYS).status_code == 401

    assert with_key(management_key(tenant)).get("/api/tenants/alice-co/").json()["role"] == "admin"  # an operator's
    assert with_key(issue(other_tenant, ada.user, "ada at charlie", "management")).get(CHARLIE_KEYS).status_code == 200


def test_keys_a_management_key_creates_are_its_creators_and_end_with_them(tenant, other_tenant, sdk_for):
    ada = admin_of_both(tenant, other_tenant)
    ci = with_key(issue(tenant, ada.user, "ada ci", "management"))
    created = post(ci, KEYS, {"name": "deploy", "scopes": ["inference", "management"]})
    assert created.status_code == 201 and created.json()["created_by"] == "ada@example.com"
    deploy = created.json()["key"]
    assert ask(sdk_for(deploy)).choices[0].message.content

    remove("api", ada)

    with pytest.raises(openai.AuthenticationError, match="revoked"):
        ask(sdk_for(deploy))
    assert with_key(deploy).get(KEYS).status_code == 401
    assert signed_in("charlie@example.com").get(CHARLIE_KEYS).json() == []


def test_deleting_an_account_revokes_its_keys_everywhere(tenant, other_tenant, sdk_for):
    ada = admin_of_both(tenant, other_tenant)
    ci = issue(tenant, ada.user, "ada ci", "inference", "management")
    elsewhere = issue(other_tenant, ada.user, "ada at charlie", "inference")
    charlies = issue(other_tenant, None, "charlie laptop")
    assert ask(sdk_for(ci)).choices[0].message.content
    ada.user.delete()  # e.g. in the Django admin: the key must not become an operator's key
    for raw in (ci, elsewhere):
        with pytest.raises(openai.AuthenticationError):
            ask(sdk_for(raw))
    assert with_key(ci).get(KEYS).status_code == 401
    assert ask(sdk_for(charlies)).choices[0].message.content
