"""The plan is checked before any provider is called: model, rate, and a hard spend cap."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai
import pytest
from asgiref.sync import async_to_sync

from billing import admission, entitlements
from billing.entitlements import Caller, Refusal
from billing.models import Plan
from gateway.api_keys import issue_api_key
from providers import router
from providers.types import Usage
from tests.conftest import make_tenant, wait_for
from tests.fakes.openai_upstream import Reply
from usage.models import MonthlySpend, UsageRecord


def ask(client, model="demo/echo", **extra):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], **extra)


def test_model_not_on_plan_is_refused_naming_the_plan_and_the_upgrade(sdk_for, catalog, fake_openai):
    free = make_tenant("freebie", "f@example.com", "free")
    client = sdk_for(issue_api_key(free, name="k").raw)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        ask(client, "openai/gpt-4o-mini")
    message = caught.value.body["message"]
    assert "'openai/gpt-4o-mini' is not on plan Free" in message and "/billing" in message
    assert caught.value.body["code"] == "model_not_on_plan"
    assert fake_openai.requests == []
    assert not UsageRecord.objects.exists()


def test_key_limited_to_other_models_is_refused(sdk_for, tenant, fake_openai):
    key = issue_api_key(tenant, name="echo only", allowed_models=["demo/*"]).raw
    client = sdk_for(key)
    with pytest.raises(openai.PermissionDeniedError, match="may not use model 'openai/gpt-4o'"):
        ask(client, "openai/gpt-4o")
    assert fake_openai.requests == []


def test_over_the_plan_rate_gets_429_with_retry_after(client, other_client, tenant):
    Plan.objects.filter(slug="pro").update(requests_per_minute=2)
    ask(client)
    ask(client)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client)
    assert caught.value.body["code"] == "rate_limit_exceeded"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert "2 requests per minute" in caught.value.body["message"]
    ask(other_client)  # another tenant's key has its own budget
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2


def test_spend_cap_reached_gets_insufficient_quota(client, other_client, tenant, fake_openai):
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("0.01"))
    ask(client, "openai/gpt-4o", max_tokens=100)  # reserves at most ~$0.001
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "openai/gpt-4o", max_tokens=16384)  # could cost $0.16: over the cap
    assert caught.value.body["code"] == "insufficient_quota"
    assert caught.value.body["type"] == "insufficient_quota"
    assert "$0.01" in caught.value.body["message"]
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(fake_openai.requests) == 1
    ask(other_client, "openai/gpt-4o", max_tokens=100)  # same plan, its own ledger: unaffected


@pytest.mark.parametrize(("public_base_url", "billing"), [
    ("", "http://gateway.example.test/billing"),  # unset: the host the client called
    ("https://tollgate.example.com/", "https://tollgate.example.com/billing"),  # the operator's, when set
])
def test_a_spent_cap_names_the_billing_page_at_the_gateways_public_address(
        gateway_url, api_key, other_client, tenant, fake_openai, settings, public_base_url, billing):
    settings.PUBLIC_BASE_URL = public_base_url
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "gateway.example.test"]
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("0.01"))
    with openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0,
                       default_headers={"Host": "gateway.example.test"}) as called_by_name:
        with pytest.raises(openai.RateLimitError) as caught:
            ask(called_by_name, "openai/gpt-4o", max_tokens=16384)
    message = caught.value.body["message"]
    assert caught.value.body["code"] == "insufficient_quota"
    assert message.endswith(f"or upgrade at {billing}.")
    assert "127.0.0.1" not in message
    assert fake_openai.requests == []
    ask(other_client, "openai/gpt-4o", max_tokens=100)  # same plan, its own ledger: unaffected


def test_spend_cap_holds_under_concurrent_requests(client, tenant, fake_openai):
    # Each request may cost up to 1000 x $10/M + its input = just over $0.01; the cap fits 5
    # at once. The fake holds every answer, so all 12 are in flight together.
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("0.055"), requests_per_minute=1000)
    fake_openai.enqueue(*[Reply(hold=True) for _ in range(12)])

    def attempt(_):
        try:
            ask(client, "openai/gpt-4o", max_tokens=1000)
            return "ok"
        except openai.RateLimitError as exc:
            return exc.body["code"]

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(attempt, n) for n in range(12)]
        wait_for(lambda: sum(f.done() for f in futures) == 7, what="seven refusals")
        wait_for(lambda: len(fake_openai.requests) == 5, what="five requests at the upstream")
        ledger = MonthlySpend.objects.get(tenant=tenant)
        assert Decimal("0.05") < ledger.reserved <= Decimal("0.055")
        fake_openai.release()
        outcomes = [f.result() for f in futures]
    assert outcomes.count("ok") == 5 and outcomes.count("insufficient_quota") == 7
    ledger.refresh_from_db()
    assert ledger.reserved == 0
    assert ledger.settled == sum(r.cost for r in UsageRecord.objects.filter(tenant=tenant)) > 0
    assert UsageRecord.objects.filter(tenant=tenant).count() == 5


def test_every_spent_cap_refusal_tells_the_sdks_not_to_retry(tenant, other_tenant):
    """Chat, media and a cache hit refused by the monthly cap: one 429, x-should-retry: false."""
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("0.01"), cache_hit_price=Decimal("0.02"))
    caller = Caller(tenant_id=tenant.pk, tenant_slug=tenant.slug, key_id=None, key_name="playground",
                    key_allowed_models=(), plan=Plan.objects.get(slug="pro"), base_url="https://gw.example")
    models = async_to_sync(router.get_catalog)().models
    chat, image = models["openai/gpt-4o"], models["openai/dall-e-2"]
    admissions = {
        "chat": (entitlements.admit, chat, {"input_tokens": 10, "max_output_tokens": 16384}),
        "media": (entitlements.admit_media, image, {"most": Usage(images=1, media_detail="256x256")}),
        "cache hit": (admission.admit_cache_hit, chat, {}),
    }
    for what, (admit, model, measures) in admissions.items():
        with pytest.raises(Refusal) as refused:
            async_to_sync(admit)(caller, model, request_id=f"req_{what}", **measures)
        assert (refused.value.status, refused.value.code) == (429, "insufficient_quota"), what
        assert refused.value.headers == {"x-should-retry": "false"}, what
        assert refused.value.message.startswith("You exceeded your current quota: plan Pro allows $0.01 of spend "
                                                "per month and "), what
        assert refused.value.message.endswith(", or upgrade at https://gw.example/billing."), what
    assert not UsageRecord.objects.exists() and not MonthlySpend.objects.filter(tenant=other_tenant).exists()
