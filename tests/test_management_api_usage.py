"""The management API's usage records (filtered, paged by cursor), usage summary, plan with this
month's use, and billing links; every role that may reads them, outsiders get 404."""

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone

from billing.models import Plan, Subscription
from gateway.api_keys import issue_api_key
from gateway.models import ApiKey, Role
from tests.conftest import wait_for
from tests.fakes.stripe_api import use_fake_stripe
from tests.test_management_api_keys import add_member, management_key, post, signed_in, with_key
from usage.models import MonthlySpend, UsageRecord

USAGE = "/api/tenants/alice-co/usage/"


def ask(sdk, model: str = "demo/echo", text: str = "one two three"):
    return sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


@pytest.fixture
def traffic(tenant, other_tenant, client, other_client, sdk_for):
    """Alice's tenant: two requests with her laptop key (echo, then gpt-4o-mini), one with a CI key
    (echo); Charlie's tenant: one request of its own."""
    ask(client)
    ask(client, "openai/gpt-4o-mini")
    ci = issue_api_key(tenant, name="ci")
    ask(sdk_for(ci.raw))
    ask(other_client)
    wait_for(lambda: UsageRecord.objects.count() == 4, what="four settled records")
    return {"laptop": ApiKey.objects.get(name="alice laptop"), "ci": ci.api_key}


def ids_of(answer) -> list[str]:
    return [record["id"] for record in answer.json()["results"]]


def test_usage_records_newest_first_filtered_and_paged_by_cursor(traffic, tenant, other_tenant, gateway_url):
    alices = list(UsageRecord.objects.filter(tenant=tenant).order_by("-created_at", "-pk").values_list(
        "request_id", flat=True))
    key = management_key(tenant)
    api = httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {key}"})
    everything = api.get(f"{USAGE}records/")
    assert everything.status_code == 200
    assert ids_of(everything) == alices
    newest = everything.json()["results"][0]
    assert newest["key"] == {"id": traffic["ci"].pk, "name": "ci", "prefix": traffic["ci"].display_prefix}
    assert newest["model"] == "demo/echo" and newest["outcome"] == "ok"
    assert Decimal(newest["cost"]) == UsageRecord.objects.get(request_id=newest["id"]).cost

    # One a page: the cursor walks every record once, in order.
    seen, url = [], f"{USAGE}records/?page_size=1"
    while url:
        page = api.get(url).json()
        seen += [r["id"] for r in page["results"]]
        url = page["next"]
    assert seen == alices

    assert len(ids_of(api.get(f"{USAGE}records/", params={"model": "openai/gpt-4o-mini"}))) == 1
    by_key = api.get(f"{USAGE}records/", params={"key": traffic["laptop"].pk})
    assert {r["key"]["name"] for r in by_key.json()["results"]} == {"alice laptop"}
    assert len(by_key.json()["results"]) == 2

    today = timezone.now().date()
    old = UsageRecord.objects.filter(tenant=tenant, model="openai/gpt-4o-mini")
    old.update(created_at=timezone.now() - timedelta(days=3))  # as if made three days ago
    recent = api.get(f"{USAGE}records/", params={"start": today.isoformat()})
    assert len(recent.json()["results"]) == 2
    three_days_ago = (today - timedelta(days=3)).isoformat()
    back_then = api.get(f"{USAGE}records/", params={"start": three_days_ago, "end": three_days_ago})
    assert [r["model"] for r in back_then.json()["results"]] == ["openai/gpt-4o-mini"]
    assert api.get(f"{USAGE}records/", params={"end": (today - timedelta(days=4)).isoformat()}).json()[
        "results"] == []

    bad = api.get(f"{USAGE}records/", params={"start": "last tuesday", "key": "x"})
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) == {"start", "key"}
    backwards = api.get(f"{USAGE}records/", params={"start": today.isoformat(), "end": three_days_ago})
    assert backwards.status_code == 400 and "end must come after start" in backwards.json()["error"]["message"]

    # Charlie's records are his alone, and Alice's are not his to read.
    charlies = signed_in("charlie@example.com")
    assert charlies.get(f"{USAGE}records/").status_code == 404
    assert with_key(management_key(other_tenant)).get(f"{USAGE}records/").status_code == 404
    own = charlies.get("/api/tenants/charlie-co/usage/records/").json()["results"]
    assert len(own) == 1 and own[0]["id"] not in alices
    # Filtering by Alice's key id from Charlie's tenant finds nothing.
    assert charlies.get("/api/tenants/charlie-co/usage/records/",
                        {"key": traffic["laptop"].pk}).json()["results"] == []
    api.close()


def test_usage_summary_has_the_month_and_each_day(traffic, tenant, other_tenant):
    add_member(tenant, "bill@example.com", Role.BILLING)
    bill = signed_in("bill@example.com")  # the billing role reads usage
    answer = bill.get(f"{USAGE}summary/", {"days": 7, "split": "model"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    records = UsageRecord.objects.filter(tenant=tenant)
    month = body["month"]
    assert month["requests"] == 3
    assert Decimal(month["cost"]) == sum(r.cost for r in records) == MonthlySpend.objects.get(tenant=tenant).settled
    assert month["spend_limit"] == "250.00"
    assert {m["model"]: m["requests"] for m in month["by_model"]} == {"demo/echo": 2, "openai/gpt-4o-mini": 1}

    today = timezone.now().date().isoformat()
    assert len({row["day"] for row in body["daily"]}) == 7
    todays = {row["split"]: row["requests"] for row in body["daily"] if row["day"] == today}
    assert todays == {"demo/echo": 2, "openai/gpt-4o-mini": 1}

    by_key = bill.get(f"{USAGE}summary/", {"days": 1, "split": "key"}).json()["daily"]
    assert {row["split"]: row["requests"] for row in by_key} == {"alice laptop": 2, "ci": 1}
    bad = bill.get(f"{USAGE}summary/", {"days": 0, "split": "colour"})
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"days", "split"}

    assert signed_in("charlie@example.com").get(f"{USAGE}summary/").status_code == 404
    assert with_key(management_key(other_tenant)).get(f"{USAGE}summary/").status_code == 404
    charlies = signed_in("charlie@example.com").get("/api/tenants/charlie-co/usage/summary/").json()
    assert charlies["month"]["requests"] == 1


@pytest.mark.parametrize("endpoint, parameter", [
    *[("records/", name) for name in ("start", "end", "model", "key", "cursor", "page_size")],
    ("summary/", "days"), ("summary/", "split"),
])
def test_an_empty_filter_is_refused_naming_it(tenant, other_tenant, endpoint, parameter):
    alice = signed_in("alice@example.com")
    answer = alice.get(f"{USAGE}{endpoint}?{parameter}=")
    assert answer.status_code == 400, answer.content
    error = answer.json()["error"]
    assert error["fields"] == {parameter: ["Empty: give it a value, or leave the parameter out."]}
    assert error["message"].startswith(f"Invalid request. {parameter}: Empty")
    assert alice.get(f"{USAGE}{endpoint}").status_code == 200  # left out, it is no filter
    for outsider in (signed_in("charlie@example.com"), with_key(management_key(other_tenant))):
        assert outsider.get(f"{USAGE}{endpoint}?{parameter}=").status_code == 404


def test_a_page_size_out_of_range_is_refused_as_the_schema_says(tenant, other_tenant):
    alice = signed_in("alice@example.com")
    for size in ("0", "501", "ten"):
        answer = alice.get(f"{USAGE}records/", {"page_size": size})
        assert answer.status_code == 400 and set(answer.json()["error"]["fields"]) == {"page_size"}
    assert alice.get(f"{USAGE}records/", {"page_size": 500}).status_code == 200
    lost = alice.get(f"{USAGE}records/", {"cursor": "not-a-cursor"})
    assert lost.status_code == 404 and "'next' or 'previous' link" in lost.json()["error"]["message"]
    assert signed_in("charlie@example.com").get(f"{USAGE}records/", {"page_size": 0}).status_code == 404


def test_plan_shows_limits_and_this_months_use(traffic, tenant, other_tenant):
    add_member(tenant, "bob@example.com", Role.MEMBER)
    answer = signed_in("bob@example.com").get("/api/tenants/alice-co/plan/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["plan"]["slug"] == "pro" and body["plan"]["max_keys"] == 25
    assert body["plan"]["monthly_spend_limit"] == "250.00" and body["plan"]["requests_per_minute"] == 600
    assert body["subscription"]["status"] == "active" and body["subscription"]["grace_ends"] is None
    spend = MonthlySpend.objects.get(tenant=tenant).settled
    usage = body["usage"]
    assert usage["requests"] == 3 and Decimal(usage["spend"]) == spend
    assert Decimal(usage["spend_remaining"]) == Decimal("250.00") - spend
    assert (usage["active_keys"], usage["members"]) == (2, 2)

    Subscription.objects.filter(tenant=other_tenant).update(plan=Plan.objects.get(slug="enterprise"))
    assert signed_in("charlie@example.com").get("/api/tenants/alice-co/plan/").status_code == 404
    assert with_key(management_key(other_tenant)).get("/api/tenants/alice-co/plan/").status_code == 404
    charlies = signed_in("charlie@example.com").get("/api/tenants/charlie-co/plan/").json()
    assert charlies["plan"]["slug"] == "enterprise" and charlies["usage"]["spend_remaining"] is None
    assert charlies["usage"]["requests"] == 1


@pytest.fixture
def stripe_fake(settings, catalog):
    Plan.objects.filter(slug="basic").update(stripe_price_id="price_basic_monthly")
    return use_fake_stripe(settings)


def test_billing_links_are_for_owners_and_billing_members(stripe_fake, tenant, other_tenant):
    add_member(tenant, "ada@example.com", Role.ADMIN)
    add_member(tenant, "bill@example.com", Role.BILLING)
    checkout = "/api/tenants/alice-co/billing/checkout/"
    portal = "/api/tenants/alice-co/billing/portal/"

    no_portal_yet = post(signed_in("alice@example.com"), portal)
    assert no_portal_yet.status_code == 409 and "choose a plan first" in no_portal_yet.json()["error"]["message"]
    for refused in (signed_in("ada@example.com"), with_key(management_key(tenant))):
        answer = post(refused, checkout, {"plan": "basic"})
        assert answer.status_code == 403 and "owner or billing" in answer.json()["error"]["message"]
    for outsider in (signed_in("charlie@example.com"), with_key(management_key(other_tenant))):
        assert post(outsider, checkout, {"plan": "basic"}).status_code == 404
        assert post(outsider, portal).status_code == 404
    assert not stripe_fake.requests_to("/v1/checkout/sessions")

    unknown = post(signed_in("bill@example.com"), checkout, {"plan": "platinum"})
    assert unknown.status_code == 400 and "platinum" in unknown.json()["error"]["fields"]["plan"][0]
    answer = post(signed_in("bill@example.com"), checkout, {"plan": "basic"})
    assert answer.status_code == 200
    assert answer.json()["url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    [session] = stripe_fake.requests_to("/v1/checkout/sessions")
    assert session["form"]["line_items"] == [{"price": "price_basic_monthly", "quantity": "1"}]
    assert session["form"]["client_reference_id"] == str(tenant.pk)
    opened = post(signed_in("alice@example.com"), portal)
    assert opened.status_code == 200 and opened.json()["url"].startswith("https://billing.stripe.com/")
    assert Subscription.objects.get(tenant=other_tenant).stripe_customer_id == ""


def test_billing_links_say_when_billing_is_not_configured(tenant, other_tenant, settings):
    settings.STRIPE_SECRET_KEY = ""
    answer = post(signed_in("alice@example.com"), "/api/tenants/alice-co/billing/checkout/", {"plan": "basic"})
    assert answer.status_code == 503 and "not configured" in answer.json()["error"]["message"]
    assert post(signed_in("charlie@example.com"), "/api/tenants/alice-co/billing/portal/").status_code == 404


def test_usage_records_show_media_units(tenant, other_tenant, gateway_url):
    UsageRecord.objects.create(
        request_id="req_media_1", tenant=tenant, model="openai/dall-e-3", provider="openai", capability="image",
        images=2, media_detail="1024x1024/hd", cost=Decimal("0.16"), outcome="ok", ending="completed")
    with httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {management_key(tenant)}"}) as api:
        [record] = api.get(f"{USAGE}records/").json()["results"]
    assert (record["images"], record["media_detail"], Decimal(record["cost"])) == (2, "1024x1024/hd", Decimal("0.16"))
    assert Decimal(record["video_seconds"]) == 0 and record["characters"] == 0 and record["web_searches"] == 0

    outsider_key = management_key(other_tenant)
    with httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {outsider_key}"}) as outsider:
        assert outsider.get(f"{USAGE}records/").status_code == 404
