"""Logins (the admin's and the dashboard's) are throttled by failures only: per client address,
and per username only for addresses that failed on it. Hammering someone's username from one
address throttles that address; the owner, from another, still logs in."""

import re
import time
from types import SimpleNamespace

import django_ratelimit.core
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

PASSWORD = "correct horse battery staple"
ATTACKER, VICTIM = "203.0.113.9", "198.51.100.7"
# (login page, what Alice types as her username, where a login lands: the form's "next")
SURFACES = {"admin": ("/admin/login/", "alice", "/admin/"),
            "dashboard": ("/accounts/login/", "alice@example.com", "/dashboard/")}


@pytest.fixture(autouse=True)
def frozen_windows(monkeypatch):
    """django-ratelimit counts in fixed windows of the clock: one frozen at the test's start keeps
    a window from ending between two of its attempts (which made the count start over)."""
    now = time.time()
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: now))


@pytest.fixture
def alice(tenant):
    """Alice, owner of alice-co, is also an operator (staff), with a password."""
    user = get_user_model().objects.get(email="alice@example.com")
    user.username, user.is_staff, user.is_superuser = "alice", True, True
    user.set_password(PASSWORD)
    user.save()
    return user


def log_in(surface: str, address: str, password: str, username: str | None = None):
    page, alices_name, landing = SURFACES[surface]
    form = {"username": username or alices_name, "password": password, "next": landing}
    return Client(REMOTE_ADDR=address).post(page, form)


def is_throttled(response) -> bool:
    return response.status_code == 429 and bool(
        re.search(r"Too many attempts\. Try again in \d+ minutes?\.", response.content.decode()))


def test_the_admin_login_is_throttled_per_client_address(settings, alice, other_tenant):
    settings.LOGIN_ATTEMPTS_RATE = "3/15m"
    for guess in ("a", "b", "c"):
        assert log_in("admin", ATTACKER, guess).status_code == 200
    refused = log_in("admin", ATTACKER, PASSWORD)  # even the right password, from there, for now
    assert is_throttled(refused)
    assert "_auth_user_id" not in refused.client.session
    assert is_throttled(log_in("admin", ATTACKER, "x", username="charlie@example.com"))  # any username

    answer = log_in("admin", VICTIM, PASSWORD)
    assert answer.status_code == 302 and answer["Location"] == "/admin/"


@pytest.mark.parametrize("surface", SURFACES)
def test_successful_logins_are_not_counted(settings, alice, surface):
    settings.LOGIN_ATTEMPTS_RATE = "2/15m"
    for _ in range(4):
        answer = log_in(surface, ATTACKER, PASSWORD)
        assert answer.status_code == 302 and answer["Location"] == SURFACES[surface][2]


@pytest.mark.parametrize("surface", SURFACES)
def test_hammering_a_username_from_many_addresses_does_not_lock_its_owner_out(settings, alice, other_tenant,
                                                                              surface):
    settings.LOGIN_ATTEMPTS_RATE = "3/15m"
    settings.LOGIN_USERNAME_RATE = "6/h"
    attackers = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
    for address in attackers:
        for guess in ("a", "b"):
            assert log_in(surface, address, guess).status_code == 200
    # Six failures on "alice": every address that failed on her is refused, the right password too.
    assert all(is_throttled(log_in(surface, address, PASSWORD)) for address in attackers)
    # A new address gets one try at her password, then no more.
    assert log_in(surface, "203.0.113.4", "d").status_code == 200
    assert is_throttled(log_in(surface, "203.0.113.4", PASSWORD))

    answer = log_in(surface, VICTIM, PASSWORD)
    assert answer.status_code == 302 and answer["Location"] == SURFACES[surface][2]
    # Charlie, another user, is not throttled by the attack on Alice from a clean address.
    assert log_in(surface, "192.0.2.50", "wrong", username="charlie@example.com").status_code == 200


def test_the_admin_and_the_dashboard_share_one_budget(settings, alice):
    settings.LOGIN_ATTEMPTS_RATE = "3/15m"
    assert log_in("admin", ATTACKER, "a").status_code == 200
    assert log_in("dashboard", ATTACKER, "b").status_code == 200
    assert log_in("admin", ATTACKER, "c").status_code == 200
    assert is_throttled(log_in("dashboard", ATTACKER, PASSWORD))
