"""Members: invite by email, accept by link, change roles, remove, revoke; the plan's member limit
and the role rules hold on the server. Charlie (another tenant) never sees Alice's members."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.utils import timezone

from billing.models import Plan
from gateway.models import Invitation, Membership, Role
from tests.conftest import add_member, signed_in

PASSWORD = "correct horse battery staple"


def invite(browser: Client, email: str, role: str = Role.MEMBER, tenant_slug: str = "alice-co"):
    return browser.post(f"/t/{tenant_slug}/members/invite/", {"email": email, "role": role})


def link_in(message) -> str:
    return re.search(r"http://127\.0\.0\.1:8000(/invitations/\S+/)", message.body).group(1)


def role_of(tenant, email: str) -> str | None:
    membership = Membership.objects.filter(tenant=tenant, user__email=email).first()
    return membership.role if membership else None


def test_invite_a_newcomer_who_creates_an_account_from_the_link(tenant, other_tenant, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    alice = signed_in("alice@example.com")
    answer = invite(alice, "Erin@Example.com", Role.ADMIN)
    assert answer["Location"] == "/t/alice-co/members/"
    [message] = mail.outbox
    assert message.to == ["erin@example.com"] and message.subject == "Join alice-co on Tollgate"
    assert "alice@example.com invites you to join alice-co on Tollgate as admin." in message.body
    link = link_in(message)
    token = link.split("/")[2]
    # Only the token's SHA-256 is kept.
    invitation = Invitation.objects.get(tenant=tenant)
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert invitation.expires_at > timezone.now() + timedelta(days=6)
    page = alice.get("/t/alice-co/members/").content.decode()
    assert 'data-testid="invitation-erin@example.com"' in page and "1 of 10" not in page and "2 of 10" in page

    # Charlie sees none of it, and cannot act on it through his own tenant either.
    charlie = signed_in("charlie@example.com")
    assert charlie.get("/t/alice-co/members/").status_code == 404
    assert invite(charlie, "mallory@example.com").status_code == 404
    assert charlie.post(f"/t/charlie-co/invitations/{invitation.pk}/revoke/").status_code == 404
    assert "erin@example.com" not in charlie.get("/t/charlie-co/members/").content.decode()

    erin = Client()
    offer = erin.get(link).content.decode()
    assert "You are invited to alice-co as <strong>admin</strong>" in offer and 'id="join-form"' in offer
    joined = erin.post(link, {"password1": PASSWORD, "password2": PASSWORD})
    assert joined["Location"] == "/t/alice-co/usage/"
    assert role_of(tenant, "erin@example.com") == Role.ADMIN
    assert erin.get("/t/alice-co/members/").status_code == 200
    assert erin.get("/t/charlie-co/members/").status_code == 404
    # Used once.
    assert Client().get(link).status_code == 410


def test_an_existing_user_logs_in_first_then_returns_to_accept(tenant, other_tenant, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    get_user_model().objects.create_user("frank@example.com", "frank@example.com", PASSWORD)
    invite(signed_in("alice@example.com"), "frank@example.com", Role.BILLING)
    link = link_in(mail.outbox[0])

    frank = Client()
    offer = frank.get(link).content.decode()
    assert f'href="/accounts/login/?next={link}"' in offer
    assert frank.post(link, {"password1": "x", "password2": "x"}).status_code == 200  # no account takeover
    logged_in = frank.post("/accounts/login/", {"username": "frank@example.com", "password": PASSWORD, "next": link})
    assert logged_in["Location"] == link
    assert role_of(tenant, "frank@example.com") is None  # nothing happens until he says so
    assert frank.post(link)["Location"] == "/t/alice-co/usage/"
    assert role_of(tenant, "frank@example.com") == Role.BILLING

    # Someone signed in with another address cannot use a link sent to Frank.
    invite(signed_in("alice@example.com"), "gina@example.com")
    charlie = signed_in("charlie@example.com")
    other_link = link_in(mail.outbox[1])
    refused = charlie.post(other_link)
    assert refused.status_code == 403 and "This invitation is for gina@example.com" in refused.content.decode()
    assert role_of(tenant, "charlie@example.com") is None


def test_revoked_and_expired_invitations_do_not_work(tenant, other_tenant, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    alice = signed_in("alice@example.com")
    invite(alice, "h@example.com")
    invite(alice, "i@example.com")
    revoked_link, expired_link = link_in(mail.outbox[0]), link_in(mail.outbox[1])
    revoked = Invitation.objects.get(email="h@example.com")
    assert alice.post(f"/t/alice-co/invitations/{revoked.pk}/revoke/")["Location"] == "/t/alice-co/members/"
    Invitation.objects.filter(email="i@example.com").update(expires_at=timezone.now() - timedelta(seconds=1))
    for link in (revoked_link, expired_link):
        page = Client().get(link)
        assert page.status_code == 410 and "no longer valid" in page.content.decode()
        assert Client().post(link, {"password1": PASSWORD, "password2": PASSWORD}).status_code == 410
    assert Client().get("/invitations/not-a-token/").status_code == 404
    assert not get_user_model().objects.filter(email__in=["h@example.com", "i@example.com"]).exists()
    assert signed_in("charlie@example.com").post(f"/t/alice-co/invitations/{revoked.pk}/revoke/").status_code == 404


def test_the_plans_member_limit_counts_pending_invitations(tenant, other_tenant):
    Plan.objects.filter(slug="pro").update(max_members=3)
    alice = signed_in("alice@example.com")
    add_member(tenant, "bob@example.com", Role.MEMBER)
    assert invite(alice, "c1@example.com").status_code == 302
    refused = invite(alice, "c2@example.com")
    assert refused.status_code == 409
    assert ("Plan Pro allows 3 members and alice-co has 3 (pending invitations included). Remove a member, "
            "revoke an invitation or upgrade the plan.") in refused.content.decode()
    assert len(mail.outbox) == 1
    again = invite(alice, "bob@example.com")
    assert "bob@example.com is a member of alice-co already." in again.content.decode()
    # Charlie's tenant (same plan) has its own count.
    assert invite(signed_in("charlie@example.com"), "c2@example.com", tenant_slug="charlie-co").status_code == 302
    assert invite(signed_in("charlie@example.com"), "c3@example.com").status_code == 404


def test_role_rules_are_enforced_on_the_server(tenant, other_tenant):
    owner = Membership.objects.get(tenant=tenant, user__email="alice@example.com")
    admin = add_member(tenant, "adam@example.com", Role.ADMIN)
    member = add_member(tenant, "bob@example.com", Role.MEMBER)
    payer = add_member(tenant, "pay@example.com", Role.BILLING)

    bob = signed_in("bob@example.com")
    page = bob.get("/t/alice-co/members/").content.decode()
    assert "adam@example.com" in page and 'id="invite-form"' not in page
    refused = invite(bob, "x@example.com")
    assert refused.status_code == 403 and "Only owners and admins manage members." in refused.content.decode()
    assert bob.post(f"/t/alice-co/members/{payer.pk}/remove/").status_code == 403
    assert signed_in("pay@example.com").get("/t/alice-co/members/").status_code == 403

    adam = signed_in("adam@example.com")
    refused = adam.post(f"/t/alice-co/members/{member.pk}/role/", {"role": Role.OWNER})
    assert refused.status_code == 403 and "Only an owner can make someone an owner." in refused.content.decode()
    assert invite(adam, "o@example.com", Role.OWNER).status_code == 403
    refused = adam.post(f"/t/alice-co/members/{owner.pk}/remove/")
    assert refused.status_code == 403 and "Only an owner can remove an owner." in refused.content.decode()
    assert adam.post(f"/t/alice-co/members/{member.pk}/role/", {"role": Role.ADMIN}).status_code == 302
    assert role_of(tenant, "bob@example.com") == Role.ADMIN
    assert adam.post(f"/t/alice-co/members/{payer.pk}/remove/").status_code == 302
    assert role_of(tenant, "pay@example.com") is None

    # The last owner can neither step down nor leave; with a second owner, she can.
    alice = signed_in("alice@example.com")
    demoted = alice.post(f"/t/alice-co/members/{owner.pk}/role/", {"role": Role.ADMIN}, follow=True)
    assert "alice@example.com is the last owner of alice-co: make someone else an owner first." in \
        demoted.content.decode()
    left = alice.post(f"/t/alice-co/members/{owner.pk}/remove/", follow=True)
    assert "is the last owner of alice-co and cannot leave" in left.content.decode()
    assert role_of(tenant, "alice@example.com") == Role.OWNER
    promoted = alice.post(f"/t/alice-co/members/{admin.pk}/role/", {"role": Role.OWNER}, follow=True)
    assert "adam@example.com is now owner." in promoted.content.decode()
    assert alice.post(f"/t/alice-co/members/{owner.pk}/remove/")["Location"] == "/dashboard/"
    assert role_of(tenant, "alice@example.com") is None
    assert alice.get("/t/alice-co/members/").status_code == 404

    # Charlie, owner of his own tenant, reaches none of Alice's memberships through it.
    charlie = signed_in("charlie@example.com")
    assert charlie.post(f"/t/charlie-co/members/{admin.pk}/role/", {"role": Role.MEMBER}).status_code == 404
    assert charlie.post(f"/t/charlie-co/members/{admin.pk}/remove/").status_code == 404
    assert charlie.post(f"/t/alice-co/members/{admin.pk}/remove/").status_code == 404
    assert role_of(tenant, "adam@example.com") == Role.OWNER


@pytest.mark.parametrize("path", ["members/", "members/invite/"])
def test_signed_out_visitors_are_sent_to_log_in(tenant, path):
    answer = Client().get(f"/t/alice-co/{path}")
    assert answer.status_code in (302, 405)
    if answer.status_code == 302:
        assert answer["Location"].startswith("/accounts/login/?next=")
