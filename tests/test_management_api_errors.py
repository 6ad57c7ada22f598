"""Every answer under /api/ is the management API's JSON error body, also where Django itself
answers (a CSRF refusal, a method a plain view does not take, a crash outside DRF, a bad Host);
the rest of the site keeps Django's pages."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import Client

from tests.test_management_api_keys import management_key, post, signed_in, with_key


def without_csrf_token(email: str) -> Client:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(get_user_model().objects.get(email=email))
    return browser


def error_of(answer, status: int) -> dict:
    assert answer.status_code == status, answer.content
    assert answer["Content-Type"] == "application/json"
    return answer.json()["error"]


def test_an_unknown_path_is_a_json_404_for_any_method_and_caller(tenant, other_tenant):
    callers = [without_csrf_token("alice@example.com"), with_key(management_key(tenant)), Client()]
    for caller in callers:
        for method in ("post", "put", "patch", "delete", "get"):
            answer = getattr(caller, method)("/api/tenants/alice-co/nothing/", {}, content_type="application/json")
            assert error_of(answer, 404)["code"] == "not_found"
    assert error_of(callers[0].post("/api/tenants/charlie-co/keys/1/rename/"), 404)["code"] == "not_found"


def test_a_signed_in_write_without_the_token_is_a_json_403_under_api_only(tenant, other_tenant):
    alice = without_csrf_token("alice@example.com")
    refused = error_of(alice.post("/api/billing/portal", {"tenant": "alice-co"}, content_type="application/json"),
                       403)
    assert refused["code"] == "permission_denied"
    assert "CSRF" in refused["message"] and "X-CSRFToken" in refused["message"]
    page = alice.post("/", {})
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")
    # With the token, the same call gets past the check (to billing's own answer).
    assert post(signed_in("alice@example.com"), "/api/billing/portal", {"tenant": "alice-co"}).status_code != 403
    assert error_of(without_csrf_token("charlie@example.com").post(
        "/api/billing/portal", {"tenant": "alice-co"}, content_type="application/json"), 403)["code"] == (
        "permission_denied")


def test_a_method_a_plain_api_view_does_not_take_is_a_json_405(tenant):
    answer = signed_in("alice@example.com").get("/api/billing/checkout")
    assert answer["Allow"] == "POST"
    error = error_of(answer, 405)
    assert error["code"] == "method_not_allowed" and "GET" in error["message"]
    # The billing views' other errors carry a code as every /api/ error does.
    assert error_of(Client().post("/api/billing/portal", {}, content_type="application/json"), 401)["code"] == (
        "not_authenticated")


@pytest.mark.parametrize("failure, status, code", [
    (RuntimeError("boom"), 500, "server_error"),
    (PermissionDenied(), 403, "permission_denied"),
    (Http404(), 404, "not_found"),
])
def test_a_failure_outside_drf_answers_json_under_api_and_a_page_elsewhere(tenant, monkeypatch, failure, status,
                                                                           code):
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr("gateway.dashboard.billing_actions.read_fields", fail)
    monkeypatch.setattr("gateway.views.render", fail)
    browser = Client(raise_request_exception=False)
    browser.force_login(get_user_model().objects.get(email="alice@example.com"))
    error = error_of(browser.post("/api/billing/portal", {"tenant": "alice-co"}, content_type="application/json"),
                     status)
    assert error["code"] == code and "boom" not in error["message"]
    page = browser.get("/")
    assert page.status_code == status and page["Content-Type"].startswith("text/html")


def test_a_request_django_cannot_accept_is_a_json_400_under_api(db):
    refused = Client().get("/api/tenants/", headers={"Host": "evil.example"})  # not in ALLOWED_HOSTS
    assert error_of(refused, 400)["code"] == "bad_request"
    page = Client().get("/", headers={"Host": "evil.example"})
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")
