"""Behind a reverse proxy: the proxy settings come from the environment; the client's address
is read from X-Forwarded-For only through TRUSTED_PROXIES (throttles key on it); links are
https:// behind a TLS proxy, and HTTPS answers carry HSTS."""

import ipaddress
import os
import re
import subprocess
import sys

from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

PROXY = "10.0.0.2"
PRINT_SETTINGS = ("import django; django.setup(); from django.conf import settings as s; "
                  "print(getattr(s, 'SECURE_PROXY_SSL_HEADER', None), s.USE_X_FORWARDED_HOST, "
                  "[str(n) for n in s.TRUSTED_PROXIES], s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE)")


def settings_in_a_fresh_process(**environ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRINT_SETTINGS], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "gateway.settings", **environ})


def test_proxy_and_https_settings_come_from_the_environment():
    behind = settings_in_a_fresh_process(TRUST_X_FORWARDED_PROTO="true", USE_X_FORWARDED_HOST="true",
                                         TRUSTED_PROXIES="10.0.0.0/8, ::1")
    assert behind.stdout.strip() == ("('HTTP_X_FORWARDED_PROTO', 'https') True ['10.0.0.0/8', '::1/128'] "
                                     "31536000 True")
    direct = settings_in_a_fresh_process(DEBUG="true")
    assert direct.stdout.strip() == "None False [] 0 False"
    typo = settings_in_a_fresh_process(TRUSTED_PROXIES="10.0.0.0/33")
    assert typo.returncode != 0 and "TRUSTED_PROXIES" in typo.stderr


def test_password_reset_links_are_https_behind_a_tls_proxy(settings, tenant, other_tenant):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.USE_X_FORWARDED_HOST = True
    settings.ALLOWED_HOSTS = ["gateway.example.com"]
    answer = Client(REMOTE_ADDR=PROXY).post("/accounts/password_reset/", {"email": "alice@example.com"},
                                            HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST="gateway.example.com")
    assert answer.status_code == 302
    assert answer["Strict-Transport-Security"] == "max-age=31536000"
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert re.search(r"https://gateway\.example\.com/accounts/reset/\S+/", message.body)


def sign_up_from(client_address: str, email: str, *, via_proxy: bool = True):
    headers = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": f"192.0.2.77, {client_address}"} if via_proxy else {
        "REMOTE_ADDR": client_address, "HTTP_X_FORWARDED_FOR": f"192.0.2.{len(email)}"}
    password = "a long enough passphrase 42"
    return Client(**headers).post("/accounts/signup/", {"email": email, "organization": email.split("@")[0],
                                                        "password1": password, "password2": password})


def test_throttles_count_the_client_behind_a_trusted_proxy_not_the_proxy(settings, catalog):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    settings.SIGNUP_RATE = "1/h"
    assert sign_up_from("203.0.113.5", "one@example.com").status_code == 302
    assert sign_up_from("198.51.100.7", "two@example.com").status_code == 302  # another client, same proxy
    assert sign_up_from("203.0.113.5", "three@example.com").status_code == 429


def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored(settings, catalog):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    settings.SIGNUP_RATE = "1/h"
    assert sign_up_from("203.0.113.5", "one@example.com", via_proxy=False).status_code == 302
    # The same peer naming another client in X-Forwarded-For is still the same client.
    assert sign_up_from("203.0.113.5", "second@example.com", via_proxy=False).status_code == 429


def test_login_throttle_keys_on_the_client_behind_the_proxy(settings, tenant, other_tenant):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    settings.LOGIN_ATTEMPTS_RATE = "2/15m"
    user = get_user_model().objects.get(email="alice@example.com")
    user.set_password("correct horse battery staple")
    user.save()

    def log_in(client_address: str, password: str):
        return Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=client_address).post(
            "/accounts/login/", {"username": "alice@example.com", "password": password})

    assert log_in("203.0.113.5", "guess").status_code == 200
    assert log_in("203.0.113.5", "guess").status_code == 200
    assert log_in("203.0.113.5", "correct horse battery staple").status_code == 429
    answer = log_in("198.51.100.7", "correct horse battery staple")
    assert answer.status_code == 302 and answer["Location"] == "/dashboard/"
    assert answer.client.get("/t/charlie-co/keys/").status_code == 404  # Alice's login, not Charlie's tenant
