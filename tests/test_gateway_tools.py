"""The gateway's own tools on /v1/chat/completions through the official openai SDK: a model asks
for web_fetch or code_interpreter, the gateway runs it (a local web site, the reference executor),
hands the result back to the model and calls it again, shows the tool in the answer, and records
one usage record with the rounds' tokens summed and the pages and seconds billed."""

import json
from decimal import Decimal

import openai
import pytest

from billing.models import Plan
from gateway import api_keys
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from tests.tool_servers import ARTICLE, TITLE
from usage.models import UsageRecord

GPT = "openai/gpt-4o-mini"
ASK = [{"role": "user", "content": "Read the tide guide and tell me what chart datum is."}]
FIRST = {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020}
SECOND = {"prompt_tokens": 3000, "completion_tokens": 100, "total_tokens": 3100}
MODEL_COST = Decimal("0.000672")  # 4000 x $0.15/M + 120 x $0.60/M
ANSWER = "Heights are measured from chart datum, per the guide."

pytestmark = pytest.mark.usefixtures("tools_reachable")


def fetch_call(url: str) -> tuple[str, str]:
    return "web_fetch", json.dumps({"url": url})


def record_of(tenant) -> UsageRecord:
    return wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")


def plan_of(tenant) -> Plan:
    return Plan.objects.get(subscriptions__tenant=tenant)


def tool_messages(fake, request: int) -> list[dict]:
    return [m for m in fake.requests[request]["body"]["messages"] if m["role"] == "tool"]


def test_a_page_is_read_fed_back_cited_and_billed(client, fake_openai, page_site, tenant, other_tenant):
    page = f"{page_site.address}{ARTICLE}"
    fake_openai.enqueue(Reply(tool_call=fetch_call(page), usage=FIRST), Reply(text=ANSWER, usage=SECOND))

    completion = client.chat.completions.create(model=GPT, messages=ASK, tools=[{"type": "web_fetch"}])

    offered = fake_openai.requests[0]["body"]["tools"]
    assert [tool["function"]["name"] for tool in offered] == ["web_fetch"]
    sent_back = fake_openai.requests[1]["body"]["messages"]
    assert sent_back[-2]["role"] == "assistant" and sent_back[-2]["tool_calls"][0]["function"]["name"] == "web_fetch"
    result = tool_messages(fake_openai, 1)[0]
    assert result["tool_call_id"] == "call_1"
    assert f"Title: {TITLE}\nURL: {page}" in result["content"] and "measured from chart datum" in result["content"]

    message = completion.choices[0].message
    shown = f"> Read [{TITLE}]({page})\n\n"
    assert message.content == shown + ANSWER and message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
    [citation] = message.annotations
    assert citation.url_citation.url == page and citation.url_citation.title == TITLE
    assert message.content[citation.url_citation.start_index:citation.url_citation.end_index] == f"[{TITLE}]({page})"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4000, 120)

    record = record_of(tenant)
    assert (record.input_tokens, record.output_tokens, record.web_fetches) == (4000, 120, 1)
    assert record.cost == MODEL_COST + plan_of(tenant).web_fetch_price
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_a_streamed_loop_shows_the_page_and_sums_the_usage(client, fake_openai, page_site, tenant, other_tenant):
    page = f"{page_site.address}{ARTICLE}"
    fake_openai.enqueue(Reply(tool_call=fetch_call(page), usage=FIRST), Reply(text=ANSWER, usage=SECOND))

    chunks = list(client.chat.completions.create(model=GPT, messages=ASK, tools=[{"type": "web_fetch"}],
                                                 stream=True, stream_options={"include_usage": True}))

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"> Read [{TITLE}]({page})\n\n" + ANSWER
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)  # the gateway's call stays its own
    annotations = [a for c in chunks if c.choices for a in (c.choices[0].delta.model_extra or {}).get(
        "annotations") or []]
    assert [(a["url_citation"]["url"], text[a["url_citation"]["start_index"]:a["url_citation"]["end_index"]])
            for a in annotations] == [(page, f"[{TITLE}]({page})")]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (4000, 120)

    record = record_of(tenant)
    assert record.streamed and (record.input_tokens, record.output_tokens, record.web_fetches) == (4000, 120, 1)
    assert record.cost == MODEL_COST + plan_of(tenant).web_fetch_price
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


@pytest.mark.parametrize("stream", [False, True])
def test_refused_pages_are_tool_errors_the_model_reads(client, fake_openai, page_site, internal_site, tenant, stream):
    page_site.robots = "User-agent: *\nDisallow: /private/\n"
    refused = [f"{page_site.address}/private/tide-tables", f"https://127.0.0.1:{internal_site.port}/latest/meta-data/"]
    fake_openai.enqueue(Reply(tool_calls=[fetch_call(url) for url in refused], usage=FIRST),
                        Reply(text="I could not read either page.", usage=SECOND))

    answer = client.chat.completions.create(model=GPT, messages=ASK, tools=[{"type": "web_fetch"}], stream=stream)
    text = ("".join(c.choices[0].delta.content or "" for c in answer if c.choices) if stream
            else answer.choices[0].message.content)

    robots, private = (m["content"] for m in tool_messages(fake_openai, 1))
    assert robots.startswith("The web_fetch tool failed: ") and "robots.txt" in robots
    assert private.startswith("The web_fetch tool failed: ") and "not a public internet address" in private
    assert f"> Could not read {refused[0]}: The robots.txt of 127.0.0.1 does not allow" in text
    assert text.endswith("I could not read either page.")
    assert "/private/tide-tables" not in page_site.hits  # robots.txt was read, the page was not
    record = record_of(tenant)
    assert (record.http_status, record.web_fetches) == (200, 0)
    assert record.cost == MODEL_COST  # nothing read, nothing billed for it


def test_arguments_a_model_got_wrong_are_tool_errors_it_reads(client, fake_openai, tenant):
    nested = '{"url": ' + "[" * 5000 + "]" * 5000 + "}"
    fake_openai.enqueue(Reply(tool_calls=[("web_fetch", json.dumps({"url": "https://example.org/\ud800"})),
                                          ("web_fetch", nested)], usage=FIRST),
                        Reply(text="Neither URL could be read.", usage=SECOND))

    completion = client.chat.completions.create(model=GPT, messages=ASK, tools=[{"type": "web_fetch"}])

    surrogate, deep = (m["content"] for m in tool_messages(fake_openai, 1))
    assert surrogate.startswith("The web_fetch tool failed: ") and "not a valid URL" in surrogate
    assert deep.startswith('The web_fetch tool failed: The arguments must be a JSON object with a string "url"')
    assert completion.choices[0].message.content.endswith("Neither URL could be read.")
    record = record_of(tenant)
    assert (record.http_status, record.web_fetches, record.cost) == (200, 0, MODEL_COST)


def test_each_round_is_billed_at_the_prices_of_the_model_that_served_it(client, fake_openai, page_site, tenant,
                                                                       settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    fake_openai.enqueue(Reply(tool_call=fetch_call(f"{page_site.address}{ARTICLE}"), usage=FIRST),  # gpt-4o-mini
                        Reply(status=503),  # gpt-4o-mini again: unavailable, so the chain's next
                        Reply(text=ANSWER, usage=SECOND))  # gpt-4o
    client.chat.completions.create(model=GPT, messages=ASK, tools=[{"type": "web_fetch"}],
                                   extra_body={"fallback_models": ["openai/gpt-4o"]})

    assert [r["body"]["model"] for r in fake_openai.requests] == ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o"]
    record = record_of(tenant)
    first = (1000 * Decimal("0.15") + 20 * Decimal("0.60")) / 1_000_000
    second = (3000 * Decimal("2.50") + 100 * Decimal("10.00")) / 1_000_000
    assert (record.model, record.input_tokens, record.web_fetches) == ("openai/gpt-4o", 4000, 1)
    assert record.cost == first + second + plan_of(tenant).web_fetch_price


def test_code_runs_on_the_executor_and_its_output_goes_back(client, fake_openai, tenant, other_tenant):
    code = "rise = 3.2 - 0.4\nprint(f'range {rise:.1f} m')\nround(rise / 6, 3)"
    fake_openai.enqueue(Reply(tool_call=("code_interpreter", json.dumps({"code": code})), usage=FIRST),
                        Reply(text="The range is 2.8 m.", usage=SECOND))

    completion = client.chat.completions.create(model=GPT, messages=ASK, tools=[{"type": "code_interpreter"}])

    [result] = tool_messages(fake_openai, 1)
    assert result["content"] == "stdout:\nrange 2.8 m\n\nvalue of the last expression:\n0.467"
    assert completion.choices[0].message.content == (
        f"```python\n{code}\n```\n\n```\nrange 2.8 m\n0.467\n```\n\nThe range is 2.8 m.")
    record = record_of(tenant)
    assert Decimal(0) < record.code_seconds <= Decimal(6)  # the snippet's time, at most its limit plus a second
    assert record.web_fetches == 0
    assert record.cost == MODEL_COST + record.code_seconds * plan_of(tenant).code_second_price
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_the_loop_stops_after_its_rounds(client, fake_openai, page_site, tenant, settings):
    settings.TOOL_LOOP_MAX_ROUNDS = 2
    page = f"{page_site.address}{ARTICLE}"
    fake_openai.enqueue(*[Reply(tool_call=fetch_call(page), usage=FIRST) for _ in range(3)])

    completion = client.chat.completions.create(model=GPT, messages=ASK, tools=[{"type": "web_fetch"}])

    assert len(fake_openai.requests) == 3  # two rounds of tools, then one call to answer
    assert [r["body"].get("tool_choice") for r in fake_openai.requests] == [None, None, "none"]
    content = completion.choices[0].message.content
    assert content.count("> Read [") == 2
    assert content.endswith("[The gateway stopped running tools: a request runs at most 2 rounds of them. "
                            "Ask again to go on.]")
    assert completion.choices[0].finish_reason == "stop" and completion.choices[0].message.tool_calls is None
    record = record_of(tenant)
    assert (record.input_tokens, record.web_fetches) == (3000, 2)


def test_the_clients_own_calls_go_back_and_the_gateways_are_dropped(client, fake_openai, page_site, tenant):
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    fake_openai.enqueue(Reply(tool_calls=[fetch_call(f"{page_site.address}{ARTICLE}"), ("get_weather", '{"city": "Brest"}')],
                              usage=FIRST))

    for stream in (False, True):
        answer = client.chat.completions.create(model=GPT, messages=ASK, tools=[weather, {"type": "web_fetch"}],
                                                stream=stream)
        if stream:
            calls = [call for c in answer if c.choices for call in c.choices[0].delta.tool_calls or ()]
            assert [(c.index, c.function.name) for c in calls if c.function.name] == [(0, "get_weather")]
            assert "".join(c.function.arguments or "" for c in calls) == '{"city": "Brest"}'
        else:
            [call] = answer.choices[0].message.tool_calls
            assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Brest"}')
            assert answer.choices[0].finish_reason == "tool_calls"
        fake_openai.enqueue(Reply(tool_calls=[fetch_call(f"{page_site.address}{ARTICLE}"),
                                              ("get_weather", '{"city": "Brest"}')], usage=FIRST))
    assert len(fake_openai.requests) == 2 and ARTICLE not in page_site.hits  # one call each; no page read
    assert wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).count() == 2)


def test_a_tool_off_the_plan_is_refused_before_any_call(client, fake_openai, tenant, settings):
    Plan.objects.filter(slug="pro").update(allowed_capabilities=["chat", "web_fetch"])
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=GPT, messages=ASK, tools=[{"type": "code_interpreter"}])
    assert refused.value.body["code"] == "capability_not_on_plan"
    assert "code_interpreter tool is not on plan Pro" in refused.value.message

    settings.PYTHON_EXECUTOR_URL = ""
    Plan.objects.filter(slug="pro").update(allowed_capabilities=["chat", "code_interpreter"])
    api_keys.forget_keys()  # keys carry their plan for KEY_CACHE_SECONDS
    with pytest.raises(openai.BadRequestError) as unconfigured:
        client.chat.completions.create(model=GPT, messages=ASK, tools=[{"type": "code_interpreter"}])
    assert unconfigured.value.body["code"] == "tool_not_configured"
    assert fake_openai.requests == []
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_admission_reserves_every_round_and_the_tools(client, fake_openai, tenant):
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("0.05"))
    assert client.chat.completions.create(model=GPT, messages=ASK, max_tokens=10)  # fits as one call
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=GPT, messages=ASK, max_tokens=10, tools=[{"type": "web_fetch"}])
    assert refused.value.body["code"] == "insufficient_quota"
    assert len(fake_openai.requests) == 1


def test_tool_shapes_the_gateway_cannot_honour_are_refused(client, fake_openai, tenant):
    web_fetch = {"type": "function", "function": {"name": "web_fetch", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as clash:
        client.chat.completions.create(model=GPT, messages=ASK, tools=[web_fetch, {"type": "web_fetch"}])
    assert "Your function 'web_fetch' has the name of the gateway's web_fetch tool" in clash.value.message
    with pytest.raises(openai.BadRequestError) as container:
        client.responses.create(model=GPT, input="hi", tools=[{"type": "code_interpreter", "container": "cntr_1"}])
    assert container.value.body["param"] == "tools[0].container"
    with pytest.raises(openai.BadRequestError) as files:
        client.responses.create(model=GPT, input="hi", tools=[
            {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file_1"]}}])
    assert files.value.body["param"] == "tools[0].container.file_ids"
    assert fake_openai.requests == []
