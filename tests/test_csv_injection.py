"""The usage export cannot carry a spreadsheet formula: every text cell that a spreadsheet would
read as one (OWASP: starting with = + - @, tab or carriage return) gets a leading apostrophe,
whoever wrote it (the tenant's key names, its clients' end users and tags, a provider's model
and error names). Numbers stay numbers."""

import csv
import io
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from gateway.api_keys import issue_api_key
from usage.models import UsageRecord

HOSTILE = {"request_id": "\treq", "model": "=1+1", "provider": "+cmd|' /C calc'!A0", "upstream_model": "-2+3",
           "capability": "@SUM(A1)", "error_type": "\r=HYPERLINK(1)"}


async def export_rows(email: str, slug: str, query: str = "") -> list[dict]:
    browser = AsyncClient()
    await browser.aforce_login(await get_user_model().objects.aget(email=email))
    response = await browser.get(f"/t/{slug}/usage/export.csv{query}")
    assert response.status_code == 200
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()
    return list(csv.DictReader(io.StringIO(body, newline="")))


def record(tenant, api_key=None, **text) -> UsageRecord:
    fields = {"request_id": "req_plain", "model": "demo/echo", "provider": "demo", "capability": "chat",
              "outcome": "error", "ending": "upstream_error", **text}
    return UsageRecord.objects.create(tenant=tenant, api_key=api_key, input_tokens=12, output_tokens=3,
                                      cost=Decimal("0.5"), reserved=Decimal("1"), http_status=502, latency_ms=40,
                                      **fields)


def test_every_text_column_that_starts_a_formula_gets_an_apostrophe(tenant, other_tenant):
    key = issue_api_key(tenant, name="-cmd").api_key
    record(tenant, api_key=key, **HOSTILE)
    record(other_tenant, request_id="req_charlie", model="=charlie")

    [row] = async_to_sync(export_rows)("alice@example.com", tenant.slug)

    for column, value in HOSTILE.items():
        assert row[column] == "'" + value, column
    assert row["api_key"] == "'-cmd"
    assert row["outcome"] == "error" and row["ending"] == "upstream_error"  # nothing to neutralise
    # Numbers are not text: written as they are.
    assert (row["input_tokens"], row["output_tokens"], row["cost"], row["http_status"], row["latency_ms"]) == (
        "12", "3", "0.5", "502", "40")
    [charlies] = async_to_sync(export_rows)("charlie@example.com", other_tenant.slug)
    assert charlies["model"] == "'=charlie" and charlies["request_id"] == "req_charlie"


def test_plain_text_is_left_alone(tenant, other_tenant):
    record(tenant, model="openai/gpt-4o-mini", error_type="upstream=5xx")
    [row] = async_to_sync(export_rows)("alice@example.com", tenant.slug)
    assert (row["model"], row["error_type"], row["api_key"]) == ("openai/gpt-4o-mini", "upstream=5xx", "playground")
    assert async_to_sync(export_rows)("charlie@example.com", other_tenant.slug) == []


def test_end_users_and_tags_cannot_become_formulas(tenant, other_tenant):
    record(tenant, end_user="=HYPERLINK(1)", tags={"team": "@SUM(A1)", "=key": "-1+1"})
    record(other_tenant, request_id="req_charlie", end_user="=charlie")
    export = async_to_sync(export_rows)

    [row] = export("alice@example.com", tenant.slug)
    assert row["end_user"] == "'=HYPERLINK(1)"
    assert row["tags"] == '{"=key": "-1+1", "team": "@SUM(A1)"}'  # a JSON object: starts with '{'
    [per_user] = export("alice@example.com", tenant.slug, "?group_by=user")
    assert (per_user["user"], per_user["requests"], per_user["cost"]) == ("'=HYPERLINK(1)", "1", "0.5")
    [per_team] = export("alice@example.com", tenant.slug, "?group_by=tag:team")
    assert per_team["tag:team"] == "'@SUM(A1)"
    [per_key] = export("alice@example.com", tenant.slug, "?group_by=tag:=key")
    assert per_key["tag:=key"] == "'-1+1"
    [charlies] = export("charlie@example.com", other_tenant.slug, "?group_by=user")
    assert charlies["user"] == "'=charlie"
