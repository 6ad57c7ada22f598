"""The usage pages and the CSV export by who each request was for: the usage page lists this
month's top users by spend and narrows to a user or a tag (key=value), the request log filters
by both, and the export filters and totals per user or per tag. Charlie's requests never show."""

import html
import re
from datetime import timedelta
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.utils import timezone

from tests.conftest import signed_in, wait_for
from tests.test_dashboard_usage import get_csv, read_csv, request_ids, tooltips
from usage import summaries
from usage.models import UsageRecord

ALICE, CHARLIE = "alice@example.com", "charlie@example.com"


def ask(sdk, text: str, **attribution):
    return sdk.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": text}],
                                       **attribution)


def record(tenant, request_id: str, *, end_user: str = "", cost: str = "0.01", created_at=None, **fields):
    return UsageRecord.objects.create(
        tenant=tenant, request_id=request_id, model="demo/echo", provider="demo", capability="chat", outcome="ok",
        ending="completed", end_user=end_user, cost=Decimal(cost), reserved=Decimal(cost), input_tokens=10,
        output_tokens=5, created_at=created_at or timezone.now(), **fields)


def top_users(page: str) -> list[str]:
    return [html.unescape(user) for user in re.findall(r'data-end-user="([^"]*)"', page)]


def traffic(client, other_client) -> dict[str, str]:
    """ann twice (team search, then team ads), bob once (team search), one naming nobody; Charlie's
    own ann (team search). The request ids of Alice's, by who and team."""
    ask(client, "one two three", user="ann", metadata={"team": "search"})
    ask(client, "four", user="ann", metadata={"team": "ads"})
    ask(client, "five six", user="bob", metadata={"team": "search"})
    ask(client, "seven")
    ask(other_client, "charlie's", user="ann", metadata={"team": "search"})
    wait_for(lambda: UsageRecord.objects.count() == 5, what="five settled records")
    return {f"{r.end_user}/{r.tags.get('team', '')}": r.request_id
            for r in UsageRecord.objects.filter(tenant__slug="alice-co")}


def test_usage_page_lists_this_months_top_ten_users_by_spend(tenant, other_tenant, django_assert_num_queries):
    for n in range(12):  # user-0 spends least, user-11 most
        record(tenant, f"req_{n}", end_user=f"user-{n}", cost=f"0.{n + 10}")
    record(tenant, "req_11b", end_user="user-11", cost="0.01")
    record(tenant, "req_nobody", cost="9")  # named no user: not a user
    month_start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    record(tenant, "req_last_month", end_user="user-0", cost="50", created_at=month_start - timedelta(days=1))
    record(other_tenant, "req_charlie", end_user="charlie's big spender", cost="99")

    page = signed_in(ALICE).get(f"/t/{tenant.slug}/usage/").content.decode()

    assert top_users(page) == [f"user-{n}" for n in range(11, 1, -1)]
    top = re.search(r'<tr data-end-user="user-11">(.*?)</tr>', page, re.S).group(1)
    assert ">2</td>" in top and "$0.22" in top  # two requests, 0.21 + 0.01
    assert "charlie" not in page and "req_charlie" not in page
    assert 'href="?split=model&amp;user=user-11"' in page  # each narrows the page to its requests
    with django_assert_num_queries(1):  # one grouped query, however many users
        summaries.top_users(tenant.id)
    assert signed_in(CHARLIE).get(f"/t/{tenant.slug}/usage/").status_code == 404


def test_usage_page_without_named_users_says_how_to_name_them(client, tenant, other_tenant):
    ask(client, "one")
    page = signed_in(ALICE).get(f"/t/{tenant.slug}/usage/").content.decode()
    assert 'id="no-top-users"' in page and "x-tollgate-user" in page


def test_usage_page_narrows_to_a_user_or_a_tag(client, other_client, tenant, other_tenant):
    ids = traffic(client, other_client)
    alice = signed_in(ALICE)
    usage = f"/t/{tenant.slug}/usage/"

    anns = alice.get(usage, {"user": "ann"}).content.decode()
    assert set(request_ids(anns)) == {ids["ann/search"], ids["ann/ads"]}
    assert any(tip.endswith("demo/echo: 2 requests") for tip in tooltips(anns))
    assert "for user ann" in anns and top_users(anns) == ["ann"]
    assert 'href="?split=key&amp;user=ann"' in anns  # the split keeps the filter
    assert "fragment=overview" in anns and "user=ann&amp;fragment=overview" in anns  # and so does the live refresh
    assert "user=ann&amp;fragment=rows" in anns

    search = alice.get(usage, {"tag": "team=search"}).content.decode()
    assert set(request_ids(search)) == {ids["ann/search"], ids["bob/search"]}
    assert top_users(search) == ["ann", "bob"] or top_users(search) == ["bob", "ann"]
    assert "with tag team=search" in search
    overview = alice.get(usage, {"tag": "team=ads", "fragment": "overview"}).content.decode()
    assert "<html" not in overview and top_users(overview) == ["ann"]

    malformed = alice.get(usage, {"tag": "team", "user": "bob"}).content.decode()
    assert 'id="usage-filter-errors"' in malformed and "key=value" in malformed
    assert set(request_ids(malformed)) == {ids["bob/search"]}  # the other filter applies

    charlies = UsageRecord.objects.get(tenant=other_tenant).request_id
    assert charlies not in anns and charlies not in search
    assert signed_in(CHARLIE).get(usage, {"user": "ann"}).status_code == 404


def test_request_log_filters_and_shows_user_and_tags(client, other_client, tenant, other_tenant):
    ids = traffic(client, other_client)
    alice = signed_in(ALICE)
    log = f"/t/{tenant.slug}/usage/records/"

    page = alice.get(log, {"user": "ann", "tag": "team=ads"}).content.decode()
    assert request_ids(page) == [ids["ann/ads"]]
    assert '<td data-label="User" class="end-user">ann<span class="tags muted">team=ads</span>' in page
    assert set(request_ids(alice.get(log, {"tag": "team=search"}).content.decode())) == {
        ids["ann/search"], ids["bob/search"]}
    assert "group_by=user" in page and "group_by=tag%3Ateam" in page  # totals to export
    rows = alice.get(log, {"user": "bob", "fragment": "rows", "request_id": ids["ann/ads"]}).content.decode()
    assert request_ids(rows) == []  # live rows keep the page's filters
    refused = alice.get(log, {"tag": "=ads"}).content.decode()
    assert 'id="filter-errors"' in refused and len(request_ids(refused)) == 4
    assert signed_in(CHARLIE).get(log, {"user": "ann"}).status_code == 404


def test_csv_export_filters_by_user_and_tag_and_totals_per_group(client, other_client, tenant, other_tenant):
    ids = traffic(client, other_client)
    export = f"/t/{tenant.slug}/usage/export.csv"
    cost = {r.request_id: r.cost for r in UsageRecord.objects.filter(tenant=tenant)}

    _, body = async_to_sync(get_csv)(ALICE, export + "?user=ann")
    rows = read_csv(body)
    assert {row["request_id"] for row in rows} == {ids["ann/search"], ids["ann/ads"]}
    assert {row["tags"] for row in rows} == {'{"team": "search"}', '{"team": "ads"}'}
    assert {row["end_user"] for row in rows} == {"ann"}
    _, body = async_to_sync(get_csv)(ALICE, export + "?tag=team=search")
    assert {row["request_id"] for row in read_csv(body)} == {ids["ann/search"], ids["bob/search"]}

    response, body = async_to_sync(get_csv)(ALICE, export + "?group_by=user")
    assert re.match(r'attachment; filename="usage-by-user-alice-co-\d{8}-\d{6}\.csv"',
                    response["Content-Disposition"])
    per_user = {row["user"]: row for row in read_csv(body)}
    assert set(per_user) == {"ann", "bob", ""}
    assert (per_user["ann"]["requests"], per_user["ann"]["errors"], per_user["ann"]["input_tokens"]) == ("2", "0", "4")
    assert Decimal(per_user["ann"]["cost"]) == cost[ids["ann/search"]] + cost[ids["ann/ads"]]

    _, body = async_to_sync(get_csv)(ALICE, export + "?group_by=tag:team&user=ann")
    assert {row["tag:team"]: row["requests"] for row in read_csv(body)} == {"search": "1", "ads": "1"}

    bad, body = async_to_sync(get_csv)(ALICE, export + "?group_by=colour")
    assert bad.status_code == 400 and "tag:<key>" in bad.content.decode()
    bad, body = async_to_sync(get_csv)(ALICE, export + "?tag=team")  # no '=': not everything, but a 400
    assert bad.status_code == 400 and "Nothing exported" in bad.content.decode() and "tag:" in bad.content.decode()
    bad, _ = async_to_sync(get_csv)(ALICE, export + "?user=" + "u" * 300)
    assert bad.status_code == 400
    outsider, _ = async_to_sync(get_csv)(CHARLIE, export + "?group_by=user")
    assert outsider.status_code == 404
    _, charlies = async_to_sync(get_csv)(CHARLIE, f"/t/{other_tenant.slug}/usage/export.csv?group_by=user")
    assert [(row["user"], row["requests"]) for row in read_csv(charlies)] == [("ann", "1")]
