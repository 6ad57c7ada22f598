"""Who decides whether the cache answers: the plan offers it, the tenant turns it on (or a key on its
own), a request says on or off; by default only deterministic requests are cached. Every answer
says what the cache did, and a bypass says why."""

import openai
import pytest

from billing.models import Plan
from gateway.api_keys import issue_api_key
from gateway.cache_settings import set_key_cache_mode, update_cache_settings
from gateway.models import ApiKey

MODEL = "openai/gpt-4o-mini"
HELLO = [{"role": "user", "content": "hello"}]


def chat_calls(fake) -> list[dict]:
    return [request for request in fake.requests if "messages" in request["body"]]


def cache_header(client, *, reason: bool = False, **options) -> str:
    options.setdefault("temperature", 0)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, **options)
    return raw.headers.get("x-tollgate-cache-reason" if reason else "x-tollgate-cache")


def test_a_tenant_that_never_turned_the_cache_on_is_never_answered_from_it(client, fake_openai, tenant):
    assert cache_header(client) == "bypass"
    assert cache_header(client, reason=True) == "disabled"
    assert len(chat_calls(fake_openai)) == 2


def test_a_request_can_turn_the_cache_on_for_itself(client, fake_openai, tenant):
    on = {"extra_headers": {"x-tollgate-cache": "on"}}
    assert [cache_header(client, **on) for _ in range(2)] == ["miss", "hit"]
    assert cache_header(client) == "bypass"  # without the header: the tenant's setting (off)
    assert len(chat_calls(fake_openai)) == 2


def test_a_request_can_turn_the_cache_off(client, fake_openai, tenant):
    update_cache_settings(tenant, enabled=True)
    cache_header(client)
    assert cache_header(client, extra_headers={"x-tollgate-cache": "off"}) == "bypass"
    assert cache_header(client, reason=True, extra_headers={"x-tollgate-cache": "off"}) == "off"
    assert cache_header(client) == "hit"


def test_only_deterministic_requests_are_cached_unless_the_tenant_widens_it(client, fake_openai, tenant):
    update_cache_settings(tenant, enabled=True)
    assert cache_header(client, reason=True, temperature=0.7) == "not-deterministic"
    assert cache_header(client, reason=True, temperature=None) == "not-deterministic"  # the provider's default
    assert [cache_header(client, temperature=0.7, seed=7) for _ in range(2)] == ["miss", "hit"]  # a seed
    update_cache_settings(tenant, any_temperature=True)
    assert [cache_header(client, temperature=0.7) for _ in range(2)] == ["miss", "hit"]


def test_what_changes_the_answer_changes_the_key(client, fake_openai, tenant):
    update_cache_settings(tenant, enabled=True)
    cache_header(client)
    assert cache_header(client, temperature=0.0) == "hit"  # 0 and 0.0 are the same temperature
    assert cache_header(client, max_tokens=50) == "miss"
    assert cache_header(client, seed=1) == "miss"
    assert cache_header(client, user="someone-else") == "hit"  # the end user's id changes nothing
    other = client.chat.completions.with_raw_response.create(
        model=MODEL, temperature=0, messages=[{"role": "system", "content": "Be brief."}, *HELLO])
    assert other.headers["x-tollgate-cache"] == "miss"
    assert len(chat_calls(fake_openai)) == 4


def test_a_key_can_be_switched_apart_from_its_tenant(client, sdk_for, fake_openai, tenant):
    update_cache_settings(tenant, enabled=True)
    quiet = issue_api_key(tenant, name="no cache")
    set_key_cache_mode(quiet.api_key, "off")
    assert cache_header(sdk_for(quiet.raw), reason=True) == "disabled"
    assert cache_header(client) == "miss"

    update_cache_settings(tenant, enabled=False)
    eager = issue_api_key(tenant, name="cache")
    set_key_cache_mode(eager.api_key, "on")
    assert cache_header(sdk_for(eager.raw)) == "hit"  # the tenant's kept answers, through the one key on
    assert cache_header(client) == "bypass"
    set_key_cache_mode(ApiKey.objects.get(pk=eager.api_key.pk), "tenant")
    assert cache_header(sdk_for(eager.raw)) == "bypass"


def test_a_plan_without_the_cache_never_uses_it_whatever_is_asked(client, fake_openai, tenant):
    Plan.objects.filter(slug="pro").update(cache_enabled=False)
    update_cache_settings(tenant, enabled=True)
    on = {"extra_headers": {"x-tollgate-cache": "on"}}
    assert [cache_header(client, reason=True, **on) for _ in range(2)] == ["not-on-plan"] * 2
    assert len(chat_calls(fake_openai)) == 2


@pytest.mark.parametrize("headers, param", [({"x-tollgate-cache": "sometimes"}, "'on' or 'off'"),
                                            ({"x-tollgate-cache-ttl": "soon"}, "whole number of seconds"),
                                            ({"x-tollgate-cache-ttl": "0"}, "1 or more"),
                                            ({"x-tollgate-cache-ttl": "9" * 5000}, "up to 12 digits")])
def test_a_malformed_cache_header_is_refused_before_any_call(client, fake_openai, tenant, headers, param):
    with pytest.raises(openai.BadRequestError) as refused:
        cache_header(client, extra_headers=headers)
    assert refused.value.code == "invalid_header" and param in refused.value.message
    assert chat_calls(fake_openai) == []


def test_a_web_search_request_is_never_cached(client, fake_openai, tenant):
    update_cache_settings(tenant, enabled=True)
    with pytest.raises(openai.APIStatusError) as refused:  # no search engine is configured in tests
        cache_header(client, extra_body={"web_search_options": {}})
    assert refused.value.response.headers["x-tollgate-cache-reason"] == "web-search"


def test_a_request_offering_the_gateways_tools_is_never_cached(client, fake_openai, tenant):
    update_cache_settings(tenant, enabled=True)
    for _ in range(2):  # the model answers without calling the tool
        assert cache_header(client, reason=True, tools=[{"type": "web_fetch"}]) == "gateway-tools"
    assert len(chat_calls(fake_openai)) == 2
