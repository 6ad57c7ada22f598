"""Sign up, log in and out, reset a password, switch tenants: the dashboard's accounts, through
Django's test client. Every page about a tenant is a 404 for someone outside it."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from billing.models import Subscription
from gateway.models import Membership, Role, Tenant
from tests.conftest import make_tenant, signed_in

PASSWORD = "correct horse battery staple"


def sign_up(browser: Client, email="dana@example.com", organization="Dana Labs", slug="", **extra):
    return browser.post("/accounts/signup/", {"email": email, "organization": organization, "slug": slug,
                                              "password1": PASSWORD, "password2": PASSWORD, **extra})


def log_in(browser: Client, email: str, password: str = PASSWORD):
    return browser.post("/accounts/login/", {"username": email, "password": password})


def confirmation_link(message) -> str:
    return re.search(r"http://testserver(/accounts/signup/confirm/\S+/)", message.body).group(1)


def test_signup_creates_a_free_tenant_owned_by_the_new_user_and_signs_in(other_tenant):
    browser = Client()
    answer = sign_up(browser)
    assert answer.status_code == 302 and answer["Location"] == "/accounts/signup/sent/"
    assert "Check your email" in browser.get(answer["Location"]).content.decode()
    assert not Tenant.objects.filter(slug="dana-labs").exists()  # nothing until the mailbox is proven
    [message] = mail.outbox
    assert message.to == ["dana@example.com"] and message.subject == "Confirm your Tollgate sign-up"
    link = confirmation_link(message)
    page = browser.get(link).content.decode()  # a look (or a mail scanner's) makes nothing
    assert "dana@example.com" in page and "Dana Labs" in page and 'id="signup-confirm"' in page
    assert not Tenant.objects.filter(slug="dana-labs").exists()

    answer = browser.post(link)
    assert answer.status_code == 302 and answer["Location"] == "/dashboard/"
    assert browser.get("/dashboard/")["Location"] == "/t/dana-labs/usage/"

    tenant = Tenant.objects.get(slug="dana-labs")
    assert tenant.name == "Dana Labs"
    assert Subscription.objects.get(tenant=tenant).plan.slug == "free"
    [membership] = Membership.objects.filter(tenant=tenant)
    assert (membership.user.email, membership.role) == ("dana@example.com", Role.OWNER)
    assert membership.user.check_password(PASSWORD)

    keys = browser.get("/t/dana-labs/keys/")
    assert keys.status_code == 200 and "Dana Labs" in keys.content.decode()
    # Charlie's tenant does not exist for Dana, and Dana's not for Charlie.
    assert browser.get("/t/charlie-co/keys/").status_code == 404
    charlie = Client()
    charlie.force_login(get_user_model().objects.get(email="charlie@example.com"))
    assert charlie.get("/t/dana-labs/keys/").status_code == 404


def test_signup_says_what_is_wrong(tenant):
    # A taken email is not among the things said (test_signup_privacy.py).
    taken_slug = sign_up(Client(), organization="Alice Co", slug="alice-co")
    assert "The tenant id &#x27;alice-co&#x27; is taken" in taken_slug.content.decode()
    mismatch = sign_up(Client(), password2="something else entirely")
    assert "The two passwords differ." in mismatch.content.decode()
    weak = Client().post("/accounts/signup/", {"email": "e@example.com", "organization": "E", "password1": "12345678",
                                               "password2": "12345678"})
    assert "This password is too common." in weak.content.decode()
    assert not Tenant.objects.exclude(slug="alice-co").exists()
    assert get_user_model().objects.count() == 1


def test_login_and_logout(tenant, other_tenant):
    alice = get_user_model().objects.get(email="alice@example.com")
    alice.set_password(PASSWORD)
    alice.save()
    browser = Client()
    assert browser.get("/t/alice-co/members/")["Location"] == "/accounts/login/?next=/t/alice-co/members/"
    wrong = log_in(browser, "alice@example.com", "not her password")
    assert wrong.status_code == 200 and "Please enter a correct username and password" in wrong.content.decode()

    answer = browser.post("/accounts/login/", {"username": "Alice@Example.com", "password": PASSWORD,
                                               "next": "/t/alice-co/members/"})
    assert answer["Location"] == "/t/alice-co/members/"
    # Production mode (DEBUG off): the session cookie only travels over HTTPS, never to scripts.
    cookie = answer.cookies["sessionid"]
    assert cookie["secure"] and cookie["httponly"]
    page = browser.get("/t/alice-co/members/").content.decode()
    assert "alice@example.com" in page and 'id="logout"' in page
    assert browser.get("/t/charlie-co/members/").status_code == 404

    assert browser.get("/accounts/logout/").status_code == 405  # logging out is a POST (CSRF-protected)
    assert browser.post("/accounts/logout/")["Location"] == "/accounts/login/"
    assert browser.get("/t/alice-co/members/").status_code == 302


def test_login_is_throttled_with_a_clear_message(settings, tenant):
    settings.LOGIN_ATTEMPTS_RATE = "3/15m"
    alice = get_user_model().objects.get(email="alice@example.com")
    alice.set_password(PASSWORD)
    alice.save()
    for _ in range(3):
        assert log_in(Client(), "alice@example.com", "guess").status_code == 200
    refused = log_in(Client(), "alice@example.com")  # even the right password, for now
    assert refused.status_code == 429
    message = re.search(r"Too many attempts\. Try again in (\d+) minutes?\.", refused.content.decode())
    assert message and 1 <= int(message.group(1)) <= 15
    assert "_auth_user_id" not in refused.client.session


def test_signup_is_throttled_per_client(settings, catalog):
    settings.SIGNUP_RATE = "2/h"
    assert sign_up(Client(), email="a1@example.com", organization="A1").status_code == 302
    assert sign_up(Client(), email="a2@example.com", organization="A2").status_code == 302
    refused = sign_up(Client(), email="a3@example.com", organization="A3")
    assert refused.status_code == 429
    assert re.search(r"Too many attempts\. Try again in \d+ minutes?\.", refused.content.decode())
    assert [message.to for message in mail.outbox] == [["a1@example.com"], ["a2@example.com"]]
    browser = Client()
    browser.post(confirmation_link(mail.outbox[0]))
    Client().post(confirmation_link(mail.outbox[1]))
    assert browser.get("/t/a1/keys/").status_code == 200
    assert browser.get("/t/a2/keys/").status_code == 404  # A1 signed up; A2's tenant is not hers
    assert not Tenant.objects.filter(slug="a3").exists()


def test_password_reset_by_email_also_for_an_account_made_by_an_operator(tenant, other_tenant):
    # create_tenant made Alice without a password: the reset is how she sets one.
    browser = Client()
    answer = browser.post("/accounts/password_reset/", {"email": "Alice@Example.com"})
    assert answer["Location"] == "/accounts/password_reset/done/"
    [message] = mail.outbox
    assert message.to == ["alice@example.com"] and message.subject == "Reset your Tollgate password"
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", message.body).group(1)

    form = browser.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = browser.post(form.redirect_chain[-1][0], {"new_password1": "a new long passphrase",
                                                     "new_password2": "a new long passphrase"})
    assert done["Location"] == "/accounts/reset/done/"
    assert log_in(Client(), "alice@example.com", "a new long passphrase")["Location"] == "/dashboard/"
    # The link works once.
    assert "This link does not work" in Client().get(link, follow=True).content.decode()
    # Unknown addresses get the same answer and no mail.
    assert Client().post("/accounts/password_reset/", {"email": "nobody@example.com"}).status_code == 302
    assert len(mail.outbox) == 1
    assert signed_in("alice@example.com").get("/t/charlie-co/keys/").status_code == 404


def test_tenant_switcher_for_a_user_in_several_tenants(tenant, other_tenant):
    make_tenant("alice-side", "alice@example.com", "free")
    browser = Client()
    browser.force_login(get_user_model().objects.get(email="alice@example.com"))
    page = browser.get("/t/alice-co/keys/").content.decode()
    assert 'action="/dashboard/switch/"' in page
    assert '<option value="alice-side">' in page and '<option value="alice-co" selected>' in page
    assert "charlie-co" not in page

    assert browser.post("/dashboard/switch/", {"tenant": "alice-side"})["Location"] == "/t/alice-side/usage/"
    assert browser.get("/dashboard/")["Location"] == "/t/alice-side/usage/"
    assert browser.post("/dashboard/switch/", {"tenant": "charlie-co"}).status_code == 404
    assert browser.get("/dashboard/")["Location"] == "/t/alice-side/usage/"
    browser.get("/t/alice-co/models/")  # opening a tenant's page makes it the current one
    assert browser.get("/dashboard/")["Location"] == "/t/alice-co/usage/"


def test_every_form_needs_the_csrf_token(tenant):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(get_user_model().objects.get(email="alice@example.com"))
    assert browser.post("/t/alice-co/keys/", {"name": "x"}).status_code == 403
    assert browser.post("/dashboard/switch/", {"tenant": "alice-co"}).status_code == 403
    assert Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "a", "password": "b"}).status_code == 403
    page = browser.get("/t/alice-co/keys/").content.decode()
    assert page.count('name="csrfmiddlewaretoken"') == page.count("<form")


@pytest.mark.parametrize("signed_in", [False, True])
def test_front_page_links_to_sign_up_log_in_and_the_dashboard(tenant, signed_in):
    browser = Client()
    if signed_in:
        browser.force_login(get_user_model().objects.get(email="alice@example.com"))
    page = browser.get("/").content.decode()
    if signed_in:
        assert 'href="/dashboard/"' in page and 'href="/accounts/signup/"' not in page
    else:
        assert 'href="/accounts/signup/"' in page and 'href="/accounts/login/"' in page
