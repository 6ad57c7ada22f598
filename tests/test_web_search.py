"""Web search grounding through the official openai SDK: the gateway searches (Tavily, Serper or Exa),
feeds the numbered sources to the model, returns url_citation annotations and bills the search."""

from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import Plan
from gateway import api_keys
from gateway.models import TenantProviderKey
from providers import router
from providers.models import Provider
from tests.conftest import serve_provider_from, wait_for
from tests.fakes import exa_search, serper_search, tavily_search
from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord

GPT = "openai/gpt-4o-mini"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = "Paris is the capital of France [1]. Its tourist office runs a site [3]."
USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
MODEL_COST = Decimal("0.00021")  # 1000 x $0.15/M + 100 x $0.60/M
FAKES = {"tavily": tavily_search.FakeTavily, "serper": serper_search.FakeSerper, "exa": exa_search.FakeExa}
QUERY_FIELD = {"tavily": "query", "serper": "q", "exa": "query"}
TENANT_KEY = "tenant-own-search-key"


@pytest.fixture(scope="module")
def search_fakes():
    fakes = {slug: fake_class().start() for slug, fake_class in FAKES.items()}
    yield fakes
    for fake in fakes.values():
        fake.stop()


@pytest.fixture
def search_plan(catalog):
    """Pro, which has the search capability (billing/plans.yaml)."""
    plan = Plan.objects.get(slug="pro")
    assert "search" in plan.allowed_capabilities
    return plan


def serve_search(slug: str, fakes: dict):
    fake = fakes[slug]
    fake.reset()
    serve_provider_from(slug, fake.base_url, fake.api_key)
    return fake


def price_of(slug: str) -> Decimal:
    return Decimal(Provider.objects.get(slug=slug).quirks["price_per_search"])


def sent_key(fake) -> str:
    """The key the last search carried (Serper's X-API-KEY header, any case)."""
    return {name.lower(): value for name, value in fake.requests[-1]["headers"].items()}["x-api-key"]


def record_of(tenant) -> UsageRecord:
    return wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")


@pytest.mark.parametrize("slug", ["tavily", "serper", "exa"])
def test_answer_is_grounded_cited_and_billed_the_search(slug, client, fake_openai, search_fakes, search_plan,
                                                        tenant, other_tenant):
    fake = serve_search(slug, search_fakes)
    fake_openai.enqueue(Reply(text=ANSWER, usage=USAGE))

    completion = client.chat.completions.create(model=GPT, messages=QUESTION, tools=[{"type": "web_search"}])

    message = completion.choices[0].message
    assert message.content == ANSWER
    cited = [(a.type, a.url_citation.url, a.url_citation.title,
              message.content[a.url_citation.start_index:a.url_citation.end_index]) for a in message.annotations]
    assert cited == [
        ("url_citation", "https://en.wikipedia.org/wiki/Paris", "Paris - Wikipedia", "[1]"),
        ("url_citation", "https://parisjetaime.com/eng", "Visit Paris", "[3]"),
    ]
    assert fake.requests[-1]["body"][QUERY_FIELD[slug]] == "What is the capital of France?"
    sources = fake_openai.requests[-1]["body"]["messages"][0]
    assert sources["role"] == "system"
    assert "[1] Paris - Wikipedia\nURL: https://en.wikipedia.org/wiki/Paris\n" in sources["content"]
    assert "[3] Visit Paris" in sources["content"] and "Cite each source you use" in sources["content"]
    assert "tools" not in fake_openai.requests[-1]["body"]  # the search tool is the gateway's, not the model's

    record = record_of(tenant)
    assert record.web_searches == 1
    assert record.cost == MODEL_COST + price_of(slug)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_streamed_answer_carries_annotations_and_the_search_cost(client, fake_openai, search_fakes, search_plan,
                                                                  tenant, other_tenant):
    fake = serve_search("exa", search_fakes)
    fake_openai.enqueue(Reply(text=ANSWER, usage=USAGE))

    chunks = list(client.chat.completions.create(
        model=GPT, messages=QUESTION, stream=True, stream_options={"include_usage": True},
        web_search_options={"search_context_size": "low", "user_location": {
            "type": "approximate", "approximate": {"country": "FR", "city": "Lyon"}}}))

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    annotations = [a for c in chunks if c.choices for a in (c.choices[0].delta.model_extra or {}).get(
        "annotations") or []]
    assert [(a["url_citation"]["url"], text[a["url_citation"]["start_index"]:a["url_citation"]["end_index"]])
            for a in annotations] == [("https://en.wikipedia.org/wiki/Paris", "[1]"),
                                      ("https://parisjetaime.com/eng", "[3]")]
    assert chunks[-1].usage.prompt_tokens == 1000
    sent = fake.requests[-1]["body"]
    assert (sent["numResults"], sent["userLocation"]) == (3, "FR")  # low context: three results

    record = record_of(tenant)
    assert record.streamed and record.web_searches == 1
    assert record.cost == MODEL_COST + price_of("exa")
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_tenant_search_key_is_used_and_not_billed_the_search_price(client, other_client, fake_openai, search_fakes,
                                                                   search_plan, tenant, other_tenant):
    fake = serve_search("serper", search_fakes)
    fake.api_key = TENANT_KEY  # the provider takes the tenant's key, not ours
    try:
        fake_openai.enqueue(Reply(text=ANSWER, usage=USAGE))
        completion = client.chat.completions.create(model=GPT, messages=QUESTION, tools=[{"type": "web_search"}],
                                                    extra_headers={"x-serper-api-key": TENANT_KEY})
        assert len(completion.choices[0].message.annotations) == 2
        assert sent_key(fake) == TENANT_KEY

        record = record_of(tenant)
        assert record.web_searches == 1 and record.cost == MODEL_COST

        stored = TenantProviderKey(tenant=tenant, provider="serper")  # kept for the tenant, used without a header
        stored.set_secret(TENANT_KEY)
        stored.save()
        api_keys.forget_keys()  # keys carry the tenant's stored keys for KEY_CACHE_SECONDS
        fake_openai.enqueue(Reply(text=ANSWER, usage=USAGE))
        client.chat.completions.create(model=GPT, messages=QUESTION, tools=[{"type": "web_search"}])
        assert sent_key(fake) == TENANT_KEY

        # Charlie's search goes out with the operator's key, which this provider refuses.
        with pytest.raises(openai.InternalServerError) as refused:
            other_client.chat.completions.create(model=GPT, messages=QUESTION, tools=[{"type": "web_search"}])
        assert refused.value.status_code == 502 and "serper" in refused.value.message
        assert sent_key(fake) == serper_search.API_KEY
    finally:
        fake.api_key = serper_search.API_KEY
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2
    assert wait_for(lambda: UsageRecord.objects.filter(tenant=other_tenant).first()).web_searches == 0


def test_search_outage_is_a_502_naming_the_provider_and_no_answer(client, fake_openai, search_fakes, search_plan,
                                                                  tenant, settings):
    settings.UPSTREAM_MAX_RETRIES = 1
    fake = serve_search("tavily", search_fakes)
    fake.enqueue(tavily_search.Reply(status=503, error="Service temporarily unavailable"),
                 tavily_search.Reply(status=503, error="Service temporarily unavailable"))

    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model=GPT, messages=QUESTION, tools=[{"type": "web_search"}])

    assert failed.value.status_code == 502
    assert failed.value.body["code"] == "upstream_unavailable"
    assert "Web search failed" in failed.value.message and "tavily" in failed.value.message
    assert "Service temporarily unavailable" in failed.value.message
    assert len(fake.requests) == 2  # retried once
    assert fake_openai.requests == []  # never an ungrounded answer
    record = record_of(tenant)
    assert (record.http_status, record.web_searches, record.cost) == (502, 0, 0)


def test_refused_own_search_key_is_the_tenants_400(gateway_url, api_key, fake_openai, search_fakes, search_plan,
                                                   tenant):
    serve_search("exa", search_fakes)
    response = httpx.post(f"{gateway_url}/v1/chat/completions", json={
        "model": GPT, "messages": QUESTION, "tools": [{"type": "web_search"}]},
        headers={"Authorization": f"Bearer {api_key}", "x-exa-api-key": "exa-wrong"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "provider_key_refused"
    assert "exa refused your own key (x-exa-api-key" in response.json()["error"]["message"]
    assert "exa-wrong" not in response.text
    assert record_of(tenant).cost == 0


def test_admission_reserves_the_search_price(client, fake_openai, search_fakes, search_plan, tenant):
    serve_search("tavily", search_fakes)
    Provider.objects.filter(slug="tavily").update(quirks={"price_per_search": "1.00"})
    router.forget_catalog()
    search_plan.monthly_spend_limit = Decimal("0.50")
    search_plan.save()

    assert client.chat.completions.create(model=GPT, messages=QUESTION, max_tokens=10)  # fits without the search
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=GPT, messages=QUESTION, max_tokens=10, tools=[{"type": "web_search"}])
    assert refused.value.body["code"] == "insufficient_quota"


def test_web_search_needs_the_search_capability_and_a_provider(client, fake_openai, search_fakes, catalog, tenant):
    fake = serve_search("tavily", search_fakes)
    plan = Plan.objects.get(slug="pro")
    plan.allowed_capabilities = [c for c in plan.allowed_capabilities if c != "search"]
    plan.save()
    api_keys.forget_keys()
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=GPT, messages=QUESTION, tools=[{"type": "web_search"}])
    assert refused.value.body["code"] == "capability_not_on_plan" and "web search" in refused.value.message
    assert fake.requests == []

    plan.allowed_capabilities = [*plan.allowed_capabilities, "search"]
    plan.save()
    Provider.objects.filter(slug="tavily").update(enabled=False)
    api_keys.forget_keys()
    router.forget_catalog()
    with pytest.raises(openai.BadRequestError) as unconfigured:
        client.chat.completions.create(model=GPT, messages=QUESTION, tools=[{"type": "web_search"}])
    assert unconfigured.value.body["code"] == "web_search_not_configured"
    assert "x-tavily-api-key" in unconfigured.value.message
    assert fake_openai.requests == []
