"""Sign-up does not tell whether an address has an account: the same answer either way, and the
mail says what happened (to an account's owner: someone tried to sign up with your address)."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from gateway.dashboard import signup
from gateway.models import Membership, Tenant

PASSWORD = "correct horse battery staple"


def sign_up(email: str, organization: str):
    browser = Client()
    answer = browser.post("/accounts/signup/", {"email": email, "organization": organization, "slug": "",
                                                "password1": PASSWORD, "password2": PASSWORD})
    return browser, answer


def confirmation_link(message) -> str:
    return re.search(r"http://testserver(/accounts/signup/confirm/\S+/)", message.body).group(1)


@pytest.mark.parametrize("typed", ["alice@example.com", "ALICE@Example.com"])
def test_a_taken_address_gets_the_same_answer_and_its_owner_a_note(tenant, other_tenant, typed):
    alice = get_user_model().objects.get(email="alice@example.com")
    alice.set_password("her own password, unchanged")
    alice.save()
    _, new = sign_up("dana@example.com", "Dana Labs")
    taken_browser, taken = sign_up(typed, "Alice Again")

    assert (taken.status_code, taken["Location"]) == (new.status_code, new["Location"]) == (
        302, "/accounts/signup/sent/")
    assert set(taken.cookies) == set(new.cookies)  # neither is signed in
    assert Client().get(taken["Location"]).content == Client().get(new["Location"]).content

    confirm, note = mail.outbox
    assert confirm.to == ["dana@example.com"] and "/accounts/signup/confirm/" in confirm.body
    assert note.to == ["alice@example.com"] and note.subject == "Someone tried to sign up with your address"
    assert "http://testserver/accounts/login/" in note.body and "http://testserver/accounts/password_reset/" in note.body
    assert "/accounts/signup/confirm/" not in note.body
    # Nothing was made or changed for the taken address.
    assert not Tenant.objects.filter(slug="alice-again").exists()
    assert get_user_model().objects.filter(email__iexact="alice@example.com").count() == 1
    assert get_user_model().objects.get(pk=alice.pk).check_password("her own password, unchanged")
    assert taken_browser.get("/t/alice-co/keys/").status_code == 302  # not signed in as Alice
    assert list(Membership.objects.filter(tenant=other_tenant).values_list("user__email", flat=True)) == [
        "charlie@example.com"]


def test_a_confirmation_link_makes_the_account_once(catalog):
    sign_up("dana@example.com", "Dana Labs")
    link = confirmation_link(mail.outbox[0])
    assert Client().post(link)["Location"] == "/dashboard/"
    again = Client().post(link)
    assert again.status_code == 409 and "has an account already" in again.content.decode()
    assert "_auth_user_id" not in again.client.session
    assert get_user_model().objects.filter(email="dana@example.com").count() == 1

    # Signing up again with the now-taken address: the note, not a second link.
    sign_up("dana@example.com", "Dana Two")
    assert mail.outbox[-1].subject == "Someone tried to sign up with your address"


def test_an_altered_or_expired_link_makes_nothing(catalog, monkeypatch):
    sign_up("dana@example.com", "Dana Labs")
    link = confirmation_link(mail.outbox[0])
    altered = link[:-6] + ("A" if link[-6] != "A" else "B") + link[-5:]
    assert Client().post(altered).status_code == 404
    monkeypatch.setattr(signup, "LINK_SECONDS", -1)
    expired = Client().post(link)
    assert expired.status_code == 404 and "This link does not work" in expired.content.decode()
    assert not get_user_model().objects.filter(email="dana@example.com").exists()
    assert not Tenant.objects.filter(slug="dana-labs").exists()
