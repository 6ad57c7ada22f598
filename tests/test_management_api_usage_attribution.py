"""The management API's usage records and summary by who each request was for: ``user`` and
``tag`` (key=value, repeatable) filter, ``group_by=user`` / ``group_by=tag:<key>`` total; a
malformed tag or grouping is a 400 naming it, and no filter ever reaches Charlie's records."""

from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from tests.conftest import wait_for
from tests.test_management_api_keys import management_key, signed_in, with_key
from usage.models import UsageRecord

USAGE = "/api/tenants/alice-co/usage/"
CHARLIES = "/api/tenants/charlie-co/usage/"


def ask(sdk, text: str, **attribution):
    return sdk.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": text}],
                                       **attribution)


@pytest.fixture
def traffic(tenant, other_tenant, client, other_client, sdk_for, api_key):
    """Alice's tenant: ann twice (team search in prod, then team ads), bob once (team search),
    and one request naming nobody, tagged by header with a key of digits; Charlie's tenant: an
    ann of its own, team search."""
    ask(client, "one two three", user="ann", metadata={"team": "search", "env": "prod"})
    ask(client, "four", user="ann", metadata={"team": "ads"})
    ask(client, "five six", user="bob", metadata={"team": "search"})
    ask(sdk_for(api_key).with_options(default_headers={"x-tollgate-tags": "2024=q1"}), "seven")
    ask(other_client, "charlie's", user="ann", metadata={"team": "search"})
    wait_for(lambda: UsageRecord.objects.count() == 5, what="five settled records")
    return {(r.end_user, r.input_tokens): r for r in UsageRecord.objects.filter(tenant=tenant)}


def found(browser, path: str, params) -> list[dict]:
    answer = browser.get(path, params)
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


def test_records_filter_by_user_and_by_tags(traffic, tenant, other_tenant):
    alice = signed_in("alice@example.com")
    records = f"{USAGE}records/"

    anns = found(alice, records, {"user": "ann"})
    assert [(r["end_user"], r["tags"]) for r in anns] == [("ann", {"team": "ads"}),
                                                          ("ann", {"team": "search", "env": "prod"})]
    assert {r["id"] for r in found(alice, records, {"tag": "team=search"})} == {
        traffic["ann", 3].request_id, traffic["bob", 2].request_id}
    both = found(alice, records, {"tag": ["team=search", "env=prod"]})  # every tag must match
    assert [r["id"] for r in both] == [traffic["ann", 3].request_id]
    assert [r["id"] for r in found(alice, records, {"user": "ann", "tag": "team=ads"})] == [
        traffic["ann", 1].request_id]
    assert [r["tags"] for r in found(alice, records, {"tag": "2024=q1"})] == [{"2024": "q1"}]
    assert found(alice, records, {"user": "nobody"}) == []
    assert found(alice, records, {"tag": "team=search=prod"}) == []  # the value is all after the first '='

    # Charlie's ann and team search are his: neither filter reaches them from Alice's tenant, nor
    # Alice's from his.
    charlies = UsageRecord.objects.get(tenant=other_tenant).request_id
    assert charlies not in {r["id"] for r in found(alice, records, {"user": "ann", "tag": "team=search"})}
    charlie = signed_in("charlie@example.com")
    assert [r["id"] for r in found(charlie, f"{CHARLIES}records/", {"user": "ann"})] == [charlies]
    assert found(charlie, f"{CHARLIES}records/", {"user": "bob"}) == []
    assert charlie.get(records, {"user": "ann"}).status_code == 404
    assert with_key(management_key(other_tenant)).get(records, {"tag": "team=search"}).status_code == 404


@pytest.mark.parametrize("endpoint", ["records/", "summary/"])
@pytest.mark.parametrize("tag", ["team", "=search", " =search"])
def test_a_malformed_tag_is_refused_naming_it(tenant, other_tenant, endpoint, tag):
    answer = signed_in("alice@example.com").get(f"{USAGE}{endpoint}", {"tag": tag})
    assert answer.status_code == 400, answer.content
    error = answer.json()["error"]
    assert set(error["fields"]) == {"tag"} and "key=value" in error["message"]
    assert signed_in("charlie@example.com").get(f"{USAGE}{endpoint}", {"tag": tag}).status_code == 404


@pytest.mark.parametrize("endpoint, parameter", [
    ("records/", "user"), ("records/", "tag"), ("summary/", "user"), ("summary/", "tag"), ("summary/", "group_by"),
])
def test_an_empty_user_tag_or_grouping_is_refused(tenant, other_tenant, endpoint, parameter):
    answer = signed_in("alice@example.com").get(f"{USAGE}{endpoint}?{parameter}=")
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"] == {parameter: ["Empty: give it a value, or leave the parameter out."]}


def groups_of(answer) -> dict[str, tuple[int, Decimal]]:
    assert answer.status_code == 200, answer.content
    return {g["value"]: (g["requests"], Decimal(g["cost"])) for g in answer.json()["groups"]}


def test_summary_groups_by_user_and_by_tag(traffic, tenant, other_tenant):
    alice = signed_in("alice@example.com")
    summary = f"{USAGE}summary/"
    cost = {key: record.cost for key, record in traffic.items()}

    by_user = alice.get(summary, {"group_by": "user", "days": 1})
    assert groups_of(by_user) == {"ann": (2, cost["ann", 3] + cost["ann", 1]), "bob": (1, cost["bob", 2]),
                                  "": (1, cost["", 1])}
    costs = [Decimal(g["cost"]) for g in by_user.json()["groups"]]
    assert costs == sorted(costs, reverse=True)  # the biggest spender first
    assert by_user.json()["groups"][0]["input_tokens"] == 4  # ann: 3 + 1

    assert groups_of(alice.get(summary, {"group_by": "tag:team"})) == {
        "search": (2, cost["ann", 3] + cost["bob", 2]), "ads": (1, cost["ann", 1]), "": (1, cost["", 1])}
    assert groups_of(alice.get(summary, {"group_by": "tag:2024"}))["q1"] == (1, cost["", 1])
    assert groups_of(alice.get(summary, {"group_by": "user", "tag": "team=search"})) == {
        "ann": (1, cost["ann", 3]), "bob": (1, cost["bob", 2])}
    assert alice.get(summary).json()["groups"] == []  # no group_by, no groups

    for bad in ("colour", "tag:", "users", "user\n"):
        answer = alice.get(summary, {"group_by": bad})
        assert answer.status_code == 400 and set(answer.json()["error"]["fields"]) == {"group_by"}, bad

    # Charlie's ann is his alone.
    charlie = signed_in("charlie@example.com")
    assert groups_of(charlie.get(f"{CHARLIES}summary/", {"group_by": "user"})) == {
        "ann": (1, UsageRecord.objects.get(tenant=other_tenant).cost)}
    assert charlie.get(summary, {"group_by": "user"}).status_code == 404


def test_user_and_tag_narrow_the_daily_rows_not_the_month(traffic, tenant, other_tenant):
    alice = signed_in("alice@example.com")
    today = timezone.now().date().isoformat()

    body = alice.get(f"{USAGE}summary/", {"user": "ann", "split": "model", "days": 3}).json()
    todays = [row for row in body["daily"] if row["day"] == today]
    assert [(row["split"], row["requests"], row["input_tokens"]) for row in todays] == [("demo/echo", 2, 4)]
    assert Decimal(todays[0]["cost"]) == traffic["ann", 3].cost + traffic["ann", 1].cost
    assert len({row["day"] for row in body["daily"]}) == 3  # zeros included
    assert body["month"]["requests"] == 4  # the whole tenant's month, as its cap

    by_key = alice.get(f"{USAGE}summary/", {"tag": "team=search", "split": "key", "days": 1}).json()["daily"]
    assert [(row["split"], row["requests"]) for row in by_key] == [("alice laptop", 2)]
    nobody = alice.get(f"{USAGE}summary/", {"user": "nobody", "days": 1}).json()["daily"]
    assert [(row["split"], row["requests"]) for row in nobody] == [("", 0)]

    charlie = signed_in("charlie@example.com")
    charlies = charlie.get(f"{CHARLIES}summary/", {"user": "ann", "days": 1}).json()["daily"]
    assert [row["requests"] for row in charlies] == [1]


def test_the_schema_says_how_to_filter_and_group(db):
    schema = Client().get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}).json()

    def query(path: str) -> dict:
        operation = schema["paths"][f"/api/tenants/{{slug}}/usage/{path}"]["get"]
        return {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}

    for path in ("records/", "summary/"):
        assert query(path)["user"]["maxLength"] == 256
        tag = query(path)["tag"]
        assert tag["type"] == "array" and tag["items"]["pattern"] == "^[^=]+=" and tag["items"]["minLength"] == 1
    assert query("summary/")["group_by"]["pattern"] == r"^(user|tag:[\s\S]+)$"
    record = schema["components"]["schemas"]["UsageRecord"]["properties"]
    assert record["tags"]["additionalProperties"]["type"] == "string" and record["end_user"]["type"] == "string"
