"""The management API against its own OpenAPI schema: schemathesis reads /api/schema/ from the app
in-process and, for every operation, sends requests made from it (valid and invalid ones, a
bounded number, the same each run), checking each answer: no 5xx, a status, content type,
headers and body the schema documents for that operation, invalid input refused, auth not
ignored. Each operation runs against a fresh tenant; no answer ever shows Charlie's tenant."""

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings

from gateway.api_keys import issue_api_key
from gateway.models import ApiKey, Role
from tests.test_management_api_keys import add_member

FUZZ = schemathesis.Config.from_dict({
    # Every operation under Alice's tenant (a random slug would only ever meet a 404).
    "parameters": {"path.slug": "alice-co"},
    "phases": {"stateful": {"enabled": False}},
    # Off: it calls any 400 to a schema-valid request a failure, and some rules are beyond a
    # schema (a key's expiry in the past, end before start, a model the plan lacks).
    "checks": {"positive_data_acceptance": {"enabled": False}},
})

# The site's own handler and middleware, called in this thread (so on the test's database). Not
# get_wsgi_application(): pytest-django has set Django up, and setting it up again redoes logging.
schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler(), config=FUZZ)


def pytest_generate_tests(metafunc):
    # The caller as a parameter (one: an operator's management key). Under pytest 9.2 it is also
    # what gives each operation's test its own id: schemathesis 4.32 names them all alike.
    if "caller" in metafunc.fixturenames:
        metafunc.parametrize("caller", ["operator-key"])


@pytest.fixture
def fuzzer_key(tenant, other_tenant, caller):
    """Alice's tenant with a member and an admin to act on, and the management key the fuzzer
    calls with: nobody created it, so it acts as admin whoever is removed or demoted."""
    add_member(tenant, "bob@example.com", Role.MEMBER)
    add_member(tenant, "ada@example.com", Role.ADMIN)
    issue_api_key(other_tenant, name="charlie's key")
    return issue_api_key(tenant, name=caller, scopes=["management"])


@schema.parametrize()
# The tenant is made per operation and shared by its examples (the function-scoped fixture).
@settings(max_examples=150, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_every_operation_answers_as_its_schema_says(case, fuzzer_key):
    # An example may have revoked the fuzzer's own key: every example starts with it live.
    ApiKey.objects.filter(pk=fuzzer_key.api_key.pk).update(revoked_at=None)
    answer = case.call_and_validate(headers={"Authorization": f"Bearer {fuzzer_key.raw}"})
    assert "charlie-co" not in answer.text and "charlie@example.com" not in answer.text
