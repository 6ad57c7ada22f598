"""The management API describes itself: an OpenAPI schema at /api/schema/ with no generator
warnings, Swagger UI at /api/docs/ served entirely by the app (no CDN); unknown paths and
methods answer in the API's JSON error body."""

import re

import httpx
import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client

from tests.test_management_api_keys import management_key, signed_in, with_key

PATHS = {
    "/api/tenants/": {"get"},
    "/api/tenants/{slug}/": {"get"},
    "/api/tenants/{slug}/keys/": {"get", "post"},
    "/api/tenants/{slug}/keys/{key_id}/": {"get", "patch"},
    "/api/tenants/{slug}/budgets/": {"get", "post"},
    "/api/tenants/{slug}/budgets/{budget_id}/": {"get", "patch", "delete"},
    "/api/tenants/{slug}/keys/{key_id}/revoke/": {"post"},
    "/api/tenants/{slug}/members/": {"get"},
    "/api/tenants/{slug}/members/{member_id}/": {"patch", "delete"},
    "/api/tenants/{slug}/invitations/": {"get", "post"},
    "/api/tenants/{slug}/invitations/{invitation_id}/revoke/": {"post"},
    "/api/tenants/{slug}/usage/records/": {"get"},
    "/api/tenants/{slug}/usage/summary/": {"get"},
    "/api/tenants/{slug}/plan/": {"get"},
    "/api/tenants/{slug}/billing/checkout/": {"post"},
    "/api/tenants/{slug}/billing/portal/": {"post"},
    "/api/tenants/{slug}/alerts/": {"get", "patch"},
    "/api/tenants/{slug}/alerts/secret/": {"post"},
    "/api/tenants/{slug}/alerts/deliveries/": {"get"},
    "/api/tenants/{slug}/alerts/deliveries/{delivery_id}/redeliver/": {"post"},
    "/api/tenants/{slug}/cache/": {"get", "patch"},
    "/api/tenants/{slug}/keys/{key_id}/cache/": {"get", "put"},
}


def test_the_schema_lists_every_endpoint_with_both_ways_to_authenticate(db, gateway_url):
    answer = httpx.get(f"{gateway_url}/api/schema/")  # public: no credentials needed
    assert answer.status_code == 200
    schema = yaml.safe_load(answer.text)
    assert schema["openapi"].startswith("3.")
    assert {path: set(ops) - {"parameters"} for path, ops in schema["paths"].items()} == PATHS
    schemes = schema["components"]["securitySchemes"]
    assert schemes["managementKey"] == {"type": "http", "scheme": "bearer", "bearerFormat": "tg-<prefix>-<secret>",
                                        "description": "A tenant API key with the 'management' scope."}
    assert schemes["session"]["in"] == "cookie"
    create_key = schema["paths"]["/api/tenants/{slug}/keys/"]["post"]
    assert {"201", "400", "401", "403", "404", "409"} <= set(create_key["responses"])
    assert "key" in schema["components"]["schemas"]["IssuedKey"]["properties"]
    as_json = httpx.get(f"{gateway_url}/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert as_json.json()["paths"].keys() == schema["paths"].keys()


def test_the_schema_generates_without_warnings_and_validates(db, tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/tenants/{slug}/usage/records/" in (tmp_path / "schema.yaml").read_text()


def test_the_schema_says_what_each_parameter_and_body_takes(db):
    schema = Client().get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}).json()
    paths = schema["paths"]

    def query(path: str) -> dict:
        return {p["name"]: p["schema"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}

    records, summary = query("/api/tenants/{slug}/usage/records/"), query("/api/tenants/{slug}/usage/summary/")
    a_time_or_a_day = {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}
    assert records["start"] == records["end"] == a_time_or_a_day
    assert records["model"]["minLength"] == records["cursor"]["minLength"] == 1
    assert records["key"]["minimum"] == 1
    assert (records["page_size"]["minimum"], records["page_size"]["maximum"]) == (1, 500)
    assert (summary["days"]["minimum"], summary["days"]["maximum"]) == (1, 366)
    assert summary["split"]["enum"] == ["model", "key"]  # no null: leave it out for one row per day
    assert "refused" in paths["/api/tenants/{slug}/usage/records/"]["get"]["description"]

    components = schema["components"]["schemas"]
    expires_at = components["KeyRequestRequest"]["properties"]["expires_at"]
    assert expires_at["nullable"] and "null or left out = never" in expires_at["description"]
    change_role = paths["/api/tenants/{slug}/members/{member_id}/"]["patch"]
    assert set(change_role["requestBody"]["content"]) == {"application/json"}  # every body is JSON only
    assert "required" not in components["PatchedRoleRequest"]  # {} is a no-op, answered 200
    assert "200" in change_role["responses"]


@pytest.fixture
def assets_from_finders(settings):
    """Serve static files as runserver does (a fresh test Client builds its middleware anew)."""
    settings.SERVESTATIC_USE_FINDERS = True


def test_the_docs_page_loads_swagger_ui_from_this_server_only(db, assets_from_finders):
    browser = Client()
    page = browser.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/api/schema/" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/static/") for source in sources), sources
    assert not re.search(r"https?://", html.replace("http://testserver", ""))
    assert '"validatorUrl": null' in html  # no badge fetched from validator.swagger.io
    for source in sources:
        assert finders.find(source.removeprefix("/static/")), f"{source} is not shipped with the app"
        served = browser.get(source)
        assert served.status_code == 200, source
        assert int(served["Content-Length"]) > 0, source


def test_unknown_paths_and_methods_answer_in_json(tenant, other_tenant):
    alice = signed_in("alice@example.com")
    unknown = alice.get("/api/tenants/alice-co/nothing/")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {"message": "Unknown endpoint GET /api/tenants/alice-co/nothing/. The API's "
                                                  "endpoints are listed at /api/docs/.", "code": "not_found"}
    wrong = alice.put("/api/tenants/alice-co/keys/", {}, content_type="application/json")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed" and "PUT" in wrong.json()["error"]["message"]
    # The older billing endpoints keep their URLs (answered by gateway.dashboard.billing_actions, not the catch-all).
    assert alice.post("/api/billing/portal", {"tenant": "alice-co"},
                      content_type="application/json").status_code != 404
    # An outsider's unknown tenant reads like any other missing tenant.
    for outsider in (signed_in("charlie@example.com"), with_key(management_key(other_tenant))):
        assert outsider.get("/api/tenants/alice-co/").json()["error"]["code"] == "not_found"
    assert [t["slug"] for t in signed_in("charlie@example.com").get("/api/tenants/").json()] == ["charlie-co"]
