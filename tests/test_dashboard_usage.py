"""The usage pages: charts and spend of the last 30 days, the request log with its filters, and
the CSV export. A member sees only its own tenant's requests; anyone else gets 404."""

import csv
import io
import re
from datetime import timedelta

import openai
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import AsyncClient, Client
from django.utils import timezone

from gateway.api_keys import issue_api_key
from gateway.models import Membership, Role
from tests.conftest import signed_in
from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord

ALICE, CHARLIE = "alice@example.com", "charlie@example.com"


def ask(sdk, text: str, model: str = "demo/echo"):
    return sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def request_ids(html: str) -> list[str]:
    return re.findall(r'data-request-id="([^"]+)"', html)


def tooltips(html: str) -> list[str]:
    return re.findall(r"<title>([^<]*)</title>", html)


def today_label() -> str:
    today = timezone.now().date()
    return f"{today:%b} {today.day}"


def test_usage_page_charts_the_tenants_requests_tokens_and_cost(client, other_client, tenant, other_tenant):
    ask(client, "one two three")
    ask(client, "four")
    ask(other_client, "charlie only")

    page = signed_in(ALICE).get(f"/t/{tenant.slug}/usage/")

    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<svg class="chart"') == 3
    assert f"{today_label()} · demo/echo: 2 requests" in tooltips(html)
    assert f"{today_label()} · demo/echo: 8 tokens" in tooltips(html)  # 4 in, 4 out
    spent = sum(r.cost for r in UsageRecord.objects.filter(tenant=tenant))
    assert f"${spent.normalize():f}" in html
    assert "$250.00" in html and "monthly limit" in html
    assert "series-label" in html and ">demo/echo <tspan" in html  # the series is labelled on the chart
    mine = set(UsageRecord.objects.filter(tenant=tenant).values_list("request_id", flat=True))
    assert set(request_ids(html)) == mine
    assert UsageRecord.objects.get(tenant=other_tenant).request_id not in html

    assert signed_in(CHARLIE).get(f"/t/{tenant.slug}/usage/").status_code == 404
    anonymous = Client().get(f"/t/{tenant.slug}/usage/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")


def test_usage_split_by_key_labels_each_key_and_escapes_its_name(client, sdk_for, tenant, other_tenant):
    sneaky = issue_api_key(tenant, name="<script>alert(1)</script>").raw
    ask(client, "a b")
    ask(sdk_for(sneaky), "c")

    html = signed_in(ALICE).get(f"/t/{tenant.slug}/usage/?split=key").content.decode()

    assert f"{today_label()} · alice laptop: 1 request" in tooltips(html)
    assert f"{today_label()} · &lt;script&gt;alert(1)&lt;/script&gt;: 1 request" in tooltips(html)
    assert "<script>alert(1)" not in html
    assert signed_in(CHARLIE).get(f"/t/{tenant.slug}/usage/?split=key").status_code == 404


def test_overview_fragment_is_what_the_live_page_reloads(client, tenant, other_tenant):
    ask(client, "one")
    fragment = signed_in(ALICE).get(f"/t/{tenant.slug}/usage/?fragment=overview").content.decode()
    assert "<html" not in fragment
    assert fragment.count('<svg class="chart"') == 3 and 'class="spend-bar"' in fragment
    assert signed_in(CHARLIE).get(f"/t/{tenant.slug}/usage/?fragment=overview").status_code == 404


def test_empty_window_says_so(tenant, other_tenant):
    html = signed_in(ALICE).get(f"/t/{tenant.slug}/usage/").content.decode()
    assert html.count("No usage in these 30 days") == 3
    assert "No requests yet" in html


def test_request_log_filters_by_model_key_outcome_dates_and_request_id(client, sdk_for, tenant, other_tenant,
                                                                      other_client, fake_openai):
    ci = issue_api_key(tenant, name="ci")
    ask(client, "one")
    ask(sdk_for(ci.raw), "two")
    fake_openai.enqueue(Reply(status=400, error_type="invalid_request_error", error_message="nope"))
    with pytest.raises(openai.BadRequestError):
        ask(client, "three", model="openai/gpt-4o-mini")
    ask(other_client, "charlie's")
    records = {r.api_key.name if r.model == "demo/echo" else "failed": r.request_id
               for r in UsageRecord.objects.filter(tenant=tenant)}
    alice = signed_in(ALICE)
    log = f"/t/{tenant.slug}/usage/records/"

    def shown(query: str = "") -> set[str]:
        page = alice.get(log + query)
        assert page.status_code == 200
        return set(request_ids(page.content.decode()))

    assert shown() == set(records.values())
    assert shown("?model=demo/echo") == {records["alice laptop"], records["ci"]}
    assert shown(f"?key={ci.api_key.pk}") == {records["ci"]}
    assert shown("?outcome=error") == {records["failed"]}
    assert shown(f"?request_id={records['ci']}") == {records["ci"]}
    today = timezone.now().date()
    assert shown(f"?since={today}&until={today}") == set(records.values())
    assert shown(f"?until={today - timedelta(days=1)}") == set()
    assert shown("?key=none") == set()  # no playground requests yet

    other_request = UsageRecord.objects.get(tenant=other_tenant).request_id
    assert shown(f"?request_id={other_request}") == set()
    # Another tenant's key is not a choice, so it is refused like any unknown value.
    other_key = UsageRecord.objects.get(tenant=other_tenant).api_key_id
    refused = alice.get(log + f"?key={other_key}").content.decode()
    assert "Select a valid choice" in refused and set(request_ids(refused)) == set(records.values())
    assert signed_in(CHARLIE).get(log).status_code == 404


def test_bad_filters_are_explained_and_the_rest_apply(client, tenant, other_tenant):
    ask(client, "one")
    html = signed_in(ALICE).get(
        f"/t/{tenant.slug}/usage/records/?since=2026-13-40&model=demo/echo").content.decode()
    assert 'id="filter-errors"' in html and "Enter a valid date" in html
    assert len(request_ids(html)) == 1

    html = signed_in(ALICE).get(
        f"/t/{tenant.slug}/usage/records/?since=2026-05-02&until=2026-05-01").content.decode()
    assert "pick a start date on or before the end date" in html


def test_request_log_pages_by_fifty_newest_first(client, tenant, other_tenant):
    for n in range(51):
        ask(client, f"request {n}")
    newest_first = list(UsageRecord.objects.filter(tenant=tenant).order_by("-created_at", "-pk")
                        .values_list("request_id", flat=True))
    alice = signed_in(ALICE)

    first = alice.get(f"/t/{tenant.slug}/usage/records/?model=demo/echo").content.decode()
    second = alice.get(f"/t/{tenant.slug}/usage/records/?model=demo/echo&page=2").content.decode()

    assert request_ids(first) == newest_first[:50]
    assert request_ids(second) == newest_first[50:]
    assert "51 requests, page 1 of 2" in first
    assert 'href="?model=demo%2Fecho&amp;page=2"' in first  # the filters follow the pages
    assert signed_in(CHARLIE).get(f"/t/{tenant.slug}/usage/records/?page=2").status_code == 404


def test_rows_fragment_gives_one_settled_request_under_the_page_filters(client, other_client, tenant,
                                                                         other_tenant):
    ask(client, "one")
    ask(other_client, "two")
    mine = UsageRecord.objects.get(tenant=tenant).request_id
    theirs = UsageRecord.objects.get(tenant=other_tenant).request_id
    alice = signed_in(ALICE)
    rows = f"/t/{tenant.slug}/usage/records/?fragment=rows&request_id="

    row = alice.get(rows + mine).content.decode()
    assert request_ids(row) == [mine] and "<html" not in row and "alice laptop" in row
    assert request_ids(alice.get(rows + theirs).content.decode()) == []
    assert request_ids(alice.get(f"/t/{tenant.slug}/usage/records/?outcome=error&fragment=rows"
                                 f"&request_id={mine}").content.decode()) == []


def read_csv(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response)))


async def get_csv(email: str, url: str):
    browser = AsyncClient()
    await browser.aforce_login(await get_user_model().objects.aget(email=email))
    response = await browser.get(url)
    body = b"".join([chunk async for chunk in response.streaming_content]) if response.streaming else b""
    return response, body.decode()


def test_csv_export_streams_every_filtered_record(client, other_client, tenant, other_tenant, fake_openai):
    ask(client, "one two")
    fake_openai.enqueue(Reply(status=400, error_type="invalid_request_error", error_message="nope"))
    with pytest.raises(openai.BadRequestError):
        ask(client, "x", model="openai/gpt-4o-mini")
    ask(other_client, "charlie's")
    export = f"/t/{tenant.slug}/usage/export.csv"

    response, body = async_to_sync(get_csv)(ALICE, export)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.match(r'attachment; filename="usage-alice-co-\d{8}-\d{6}\.csv"', response["Content-Disposition"])
    rows = read_csv(body)
    assert {row["request_id"] for row in rows} == set(
        UsageRecord.objects.filter(tenant=tenant).values_list("request_id", flat=True))
    echo = next(row for row in rows if row["model"] == "demo/echo")
    record = UsageRecord.objects.get(request_id=echo["request_id"])
    assert (echo["api_key"], echo["input_tokens"], echo["output_tokens"]) == ("alice laptop", "2", "2")
    assert echo["cost"] == f"{record.cost.normalize():f}" and echo["outcome"] == "ok"

    _, errors_only = async_to_sync(get_csv)(ALICE, export + "?outcome=error")
    assert [row["model"] for row in read_csv(errors_only)] == ["openai/gpt-4o-mini"]

    outsider, _ = async_to_sync(get_csv)(CHARLIE, export)
    assert outsider.status_code == 404


def test_key_names_cannot_become_spreadsheet_formulas(sdk_for, tenant, other_tenant):
    ask(sdk_for(issue_api_key(tenant, name="=HYPERLINK(1)").raw), "one")
    _, body = async_to_sync(get_csv)(ALICE, f"/t/{tenant.slug}/usage/export.csv")
    assert read_csv(body)[0]["api_key"] == "'=HYPERLINK(1)"


def test_billing_members_see_usage(client, tenant, other_tenant):
    ask(client, "one")
    accountant = get_user_model().objects.create_user(username="bea", email="bea@example.com")
    Membership.objects.create(tenant=tenant, user=accountant, role=Role.BILLING)
    assert signed_in("bea@example.com").get(f"/t/{tenant.slug}/usage/").status_code == 200
    assert signed_in("bea@example.com").get(f"/t/{other_tenant.slug}/usage/").status_code == 404
