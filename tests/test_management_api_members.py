"""The management API's members: list, invite (emailed link), change role, remove or leave, revoke
an invitation; the role rules hold on the server; outsiders get 404."""

import re

from django.contrib.auth import get_user_model

from billing.models import Plan
from gateway.models import Invitation, Membership, Role
from tests.test_management_api_keys import add_member, management_key, post, signed_in, with_key

MEMBERS = "/api/tenants/alice-co/members/"
INVITATIONS = "/api/tenants/alice-co/invitations/"


def patch(browser, path: str, body: dict):
    return browser.patch(path, body, content_type="application/json")


def member_id(tenant, email: str) -> int:
    return Membership.objects.get(tenant=tenant, user__email=email).pk


def outsiders(other_tenant):
    """Charlie signed in, and his tenant's management key."""
    return [signed_in("charlie@example.com"), with_key(management_key(other_tenant))]


def test_members_list_their_team_and_outsiders_see_nothing(tenant, other_tenant):
    add_member(tenant, "bob@example.com", Role.MEMBER)
    add_member(tenant, "bill@example.com", Role.BILLING)
    listed = signed_in("bob@example.com").get(MEMBERS)
    assert listed.status_code == 200
    assert [(m["email"], m["role"]) for m in listed.json()] == [
        ("alice@example.com", "owner"), ("bob@example.com", "member"), ("bill@example.com", "billing")]
    assert set(listed.json()[0]) == {"id", "email", "name", "role", "joined_at"}
    assert signed_in("bill@example.com").get(MEMBERS).status_code == 403
    for outsider in outsiders(other_tenant):
        answer = outsider.get(MEMBERS)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
        assert outsider.get(INVITATIONS).status_code == 404
    assert "bob@example.com" not in signed_in("charlie@example.com").get(
        "/api/tenants/charlie-co/members/").content.decode()


def test_an_owner_invites_by_email_and_the_link_lets_them_join(tenant, other_tenant, mailoutbox):
    alice = signed_in("alice@example.com")
    answer = post(alice, INVITATIONS, {"email": "Dave@Example.com", "role": "admin"})
    assert answer.status_code == 201, answer.content
    assert answer.json() | {"id": 0, "created_at": "", "expires_at": ""} == {
        "id": 0, "email": "dave@example.com", "role": "admin", "invited_by": "alice@example.com",
        "created_at": "", "expires_at": ""}
    [mail] = mailoutbox
    assert mail.to == ["dave@example.com"] and "alice-co" in mail.subject
    link = re.search(r"https?://\S+/invitations/(\S+)/", mail.body)
    assert link and link.group(1) not in answer.content.decode()  # the token travels only by email
    assert [i["email"] for i in alice.get(INVITATIONS).json()] == ["dave@example.com"]

    dave = get_user_model().objects.create_user(username="dave", email="dave@example.com")
    browser = signed_in("dave@example.com")
    browser.post(f"/invitations/{link.group(1)}/")
    assert Membership.objects.get(tenant=tenant, user=dave).role == Role.ADMIN
    assert alice.get(INVITATIONS).json() == []
    assert not Membership.objects.filter(tenant=other_tenant, user=dave).exists()

    for outsider in outsiders(other_tenant):
        assert post(outsider, INVITATIONS, {"email": "eve@example.com"}).status_code == 404
    assert not Invitation.objects.filter(email="eve@example.com").exists()


def test_invitations_follow_the_role_rules_and_the_plans_seats(tenant, other_tenant, mailoutbox):
    add_member(tenant, "ada@example.com", Role.ADMIN)
    add_member(tenant, "bob@example.com", Role.MEMBER)
    ada, bob = signed_in("ada@example.com"), signed_in("bob@example.com")

    refused = post(bob, INVITATIONS, {"email": "x@example.com"})
    assert refused.status_code == 403 and "inviting members" in refused.json()["error"]["message"]
    refused = post(ada, INVITATIONS, {"email": "x@example.com", "role": "owner"})
    assert refused.status_code == 403 and "owner" in refused.json()["error"]["message"]
    assert post(ada, INVITATIONS, {"email": "bob@example.com"}).status_code == 409  # a member already
    assert post(ada, INVITATIONS, {"email": "not an address"}).json()["error"]["fields"]["email"]

    Plan.objects.filter(slug="pro").update(max_members=4)
    assert post(ada, INVITATIONS, {"email": "x@example.com"}).status_code == 201
    assert post(ada, INVITATIONS, {"email": "x@example.com"}).status_code == 409  # pending already
    full = post(ada, INVITATIONS, {"email": "y@example.com"})
    assert full.status_code == 409 and "upgrade the plan" in full.json()["error"]["message"]
    assert len(mailoutbox) == 1

    pending = Invitation.objects.get(email="x@example.com")
    for outsider in outsiders(other_tenant):
        assert post(outsider, f"{INVITATIONS}{pending.pk}/revoke/").status_code == 404
    assert post(bob, f"{INVITATIONS}{pending.pk}/revoke/").status_code == 403
    revoked = post(ada, f"{INVITATIONS}{pending.pk}/revoke/")
    assert revoked.status_code == 200
    assert Invitation.objects.get(pk=pending.pk).revoked_at is not None
    assert post(ada, INVITATIONS, {"email": "y@example.com"}).status_code == 201  # the seat is free again


def test_roles_change_by_the_rules_and_the_last_owner_stays(tenant, other_tenant):
    add_member(tenant, "ada@example.com", Role.ADMIN)
    add_member(tenant, "bob@example.com", Role.MEMBER)
    alice, ada, bob = (signed_in(f"{name}@example.com") for name in ("alice", "ada", "bob"))
    bob_path = f"{MEMBERS}{member_id(tenant, 'bob@example.com')}/"
    alice_path = f"{MEMBERS}{member_id(tenant, 'alice@example.com')}/"

    changed = patch(ada, bob_path, {"role": "billing"})
    assert changed.status_code == 200 and changed.json()["role"] == "billing"
    assert patch(ada, bob_path, {"role": "owner"}).status_code == 403  # only an owner makes owners
    assert patch(ada, alice_path, {"role": "member"}).status_code == 403  # nor demotes one
    assert patch(signed_in("bob@example.com"), bob_path, {"role": "admin"}).status_code == 403
    assert patch(alice, bob_path, {"role": "chief"}).json()["error"]["fields"]["role"]

    last = patch(alice, alice_path, {"role": "admin"})
    assert last.status_code == 409 and "last owner" in last.json()["error"]["message"]
    assert patch(alice, bob_path, {"role": "owner"}).json()["role"] == "owner"
    assert patch(alice, alice_path, {"role": "admin"}).json()["role"] == "admin"  # Bob owns it now

    charlie_path = f"{MEMBERS}{member_id(other_tenant, 'charlie@example.com')}/"
    assert patch(bob, charlie_path, {"role": "member"}).status_code == 404  # not a member of alice-co
    for outsider in outsiders(other_tenant):
        assert patch(outsider, bob_path, {"role": "member"}).status_code == 404
    assert Membership.objects.get(tenant=tenant, user__email="bob@example.com").role == Role.OWNER
    assert Membership.objects.get(tenant=other_tenant, user__email="charlie@example.com").role == Role.OWNER


def test_a_patch_without_a_role_changes_nothing(tenant, other_tenant):
    add_member(tenant, "bob@example.com", Role.MEMBER)
    bob_path = f"{MEMBERS}{member_id(tenant, 'bob@example.com')}/"
    for manager in (signed_in("alice@example.com"), with_key(management_key(tenant))):
        unchanged = patch(manager, bob_path, {})
        assert unchanged.status_code == 200, unchanged.content
        assert (unchanged.json()["email"], unchanged.json()["role"]) == ("bob@example.com", "member")
        assert patch(manager, f"{MEMBERS}0/", {}).status_code == 404
    assert patch(signed_in("bob@example.com"), bob_path, {}).status_code == 403  # still for managers only
    charlie_path = f"{MEMBERS}{member_id(other_tenant, 'charlie@example.com')}/"
    assert patch(signed_in("alice@example.com"), charlie_path, {}).status_code == 404
    for outsider in outsiders(other_tenant):
        assert patch(outsider, bob_path, {}).status_code == 404
    assert Membership.objects.get(tenant=tenant, user__email="bob@example.com").role == Role.MEMBER


def test_managers_remove_members_and_anyone_may_leave_but_the_last_owner(tenant, other_tenant):
    add_member(tenant, "ada@example.com", Role.ADMIN)
    add_member(tenant, "bob@example.com", Role.MEMBER)
    add_member(tenant, "bill@example.com", Role.BILLING)
    alice, ada, bob = (signed_in(f"{name}@example.com") for name in ("alice", "ada", "bob"))

    for outsider in outsiders(other_tenant):
        assert outsider.delete(f"{MEMBERS}{member_id(tenant, 'bob@example.com')}/").status_code == 404
    assert bob.delete(f"{MEMBERS}{member_id(tenant, 'bill@example.com')}/").status_code == 403
    assert ada.delete(f"{MEMBERS}{member_id(tenant, 'alice@example.com')}/").status_code == 403
    assert ada.delete(f"{MEMBERS}{member_id(tenant, 'bill@example.com')}/").status_code == 204
    assert bob.delete(f"{MEMBERS}{member_id(tenant, 'bob@example.com')}/").status_code == 204  # leaves
    assert bob.get(MEMBERS).status_code == 404  # and is an outsider now
    last = alice.delete(f"{MEMBERS}{member_id(tenant, 'alice@example.com')}/")
    assert last.status_code == 409 and "last owner" in last.json()["error"]["message"]
    assert [m["email"] for m in alice.get(MEMBERS).json()] == ["alice@example.com", "ada@example.com"]
    assert Membership.objects.filter(tenant=other_tenant).count() == 1


def test_a_management_key_acts_as_an_admin_for_members(tenant, other_tenant, mailoutbox):
    add_member(tenant, "bob@example.com", Role.MEMBER)
    key = with_key(management_key(tenant))
    invited = post(key, INVITATIONS, {"email": "dave@example.com", "role": "member"})
    assert invited.status_code == 201 and invited.json()["invited_by"] is None
    assert len(mailoutbox) == 1
    assert post(key, INVITATIONS, {"email": "own@example.com", "role": "owner"}).status_code == 403
    bob_path = f"{MEMBERS}{member_id(tenant, 'bob@example.com')}/"
    assert patch(key, bob_path, {"role": "admin"}).json()["role"] == "admin"
    assert key.delete(bob_path).status_code == 204
    assert patch(key, f"{MEMBERS}{member_id(tenant, 'alice@example.com')}/", {"role": "member"}).status_code == 403
    charlie_path = f"/api/tenants/charlie-co/members/{member_id(other_tenant, 'charlie@example.com')}/"
    assert key.delete(charlie_path).status_code == 404
    assert Membership.objects.filter(tenant=other_tenant).exists()
