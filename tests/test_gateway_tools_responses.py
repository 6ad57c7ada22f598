"""The gateway's own tools on /v1/responses through the official openai SDK: a page read is a
web_search_call with an open_page action, a snippet a code_interpreter_call with its code and logs,
each between the messages of the model calls around it, whole, streamed and stored."""

import json
from decimal import Decimal

import openai
import pytest

from billing.models import Plan
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from tests.tool_servers import ARTICLE, TITLE
from usage.models import UsageRecord

GPT = "openai/gpt-4o-mini"
TOOLS = [{"type": "web_fetch"}, {"type": "code_interpreter", "container": {"type": "auto"}}]
QUESTION = "Read the tide guide, then work out a third of a 2.8 m range."
CODE = "print(round(2.8 / 3, 2))"
USAGE = {"prompt_tokens": 500, "completion_tokens": 10, "total_tokens": 510}
ANSWER = "A third of the range is 0.93 m."

pytestmark = pytest.mark.usefixtures("tools_reachable")


def script(fake, page: str) -> None:
    """The model reads the page, runs the snippet, then answers."""
    fake.enqueue(Reply(tool_call=("web_fetch", json.dumps({"url": page})), usage=USAGE),
                 Reply(tool_call=("code_interpreter", json.dumps({"code": CODE})), usage=USAGE),
                 Reply(text=ANSWER, usage=USAGE))


def check_output(output, page: str) -> None:
    assert [item.type for item in output] == ["web_search_call", "code_interpreter_call", "message"]
    fetch, run, message = output
    assert (fetch.status, fetch.action.type, fetch.action.url) == ("completed", "open_page", page)
    assert (run.status, run.code, run.container_id) == ("completed", CODE, "cntr_gateway")
    assert [(o.type, o.logs) for o in run.outputs] == [("logs", "0.93")]
    text = message.content[0]
    assert text.text == ANSWER
    assert [(a.type, a.url, a.title, a.start_index, a.end_index) for a in text.annotations] == [
        ("url_citation", page, TITLE, 0, len(ANSWER))]


def test_a_response_shows_the_page_read_and_the_code_run(client, other_client, fake_openai, page_site, tenant,
                                                        other_tenant):
    page = f"{page_site.address}{ARTICLE}"
    script(fake_openai, page)

    response = client.responses.create(model=GPT, input=QUESTION, tools=TOOLS)

    assert [t["function"]["name"] for t in fake_openai.requests[0]["body"]["tools"]] == ["web_fetch",
                                                                                          "code_interpreter"]
    assert len(fake_openai.requests) == 3
    assert "stdout:\n0.93" in fake_openai.requests[2]["body"]["messages"][-1]["content"]
    check_output(response.output, page)
    assert response.output_text == ANSWER
    assert [tool.type for tool in response.tools] == ["web_fetch", "code_interpreter"]
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1500, 30)

    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    plan = Plan.objects.get(slug="pro")
    assert (record.input_tokens, record.output_tokens, record.web_fetches) == (1500, 30, 1)
    assert record.code_seconds > 0
    model_cost = Decimal(1500) * Decimal("0.15") / 1_000_000 + Decimal(30) * Decimal("0.60") / 1_000_000
    assert record.cost == model_cost + plan.web_fetch_price + record.code_seconds * plan.code_second_price
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_max_tool_calls_bounds_what_the_gateway_runs_and_bills(client, fake_openai, page_site, tenant):
    page = f"{page_site.address}{ARTICLE}"
    fetch = ("web_fetch", json.dumps({"url": page}))
    fake_openai.enqueue(Reply(tool_calls=[fetch, fetch], usage=USAGE), Reply(tool_call=fetch, usage=USAGE),
                        Reply(text=ANSWER, usage=USAGE))
    response = client.responses.create(model=GPT, input=QUESTION, tools=[{"type": "web_fetch"}], max_tool_calls=2)
    assert response.max_tool_calls == 2
    runs = [item for item in response.output if item.type == "web_search_call"]
    assert [run.status for run in runs] == ["completed", "completed", "failed"]  # the third is answered unrun
    assert page_site.hits.count(ARTICLE) == 2
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.web_fetches == 2


def test_tool_choice_forces_a_gateway_tool_once(client, fake_openai, page_site):
    page = f"{page_site.address}{ARTICLE}"
    fake_openai.enqueue(Reply(tool_call=("web_fetch", json.dumps({"url": page})), usage=USAGE),
                        Reply(text=ANSWER, usage=USAGE))
    response = client.responses.create(model=GPT, input=QUESTION, tools=[{"type": "web_fetch"}],
                                       tool_choice={"type": "web_fetch"})
    assert fake_openai.requests[0]["body"]["tool_choice"] == {"type": "function", "function": {"name": "web_fetch"}}
    assert fake_openai.requests[1]["body"]["tool_choice"] == "auto"  # forced once, then free to answer
    assert [item.type for item in response.output] == ["web_search_call", "message"]


def test_a_streamed_response_shows_each_tool_as_it_runs(client, other_client, fake_openai, page_site):
    page = f"{page_site.address}{ARTICLE}"
    script(fake_openai, page)

    events = list(client.responses.create(model=GPT, input=QUESTION, tools=TOOLS, stream=True))

    kinds = [event.type for event in events]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    fetching = kinds.index("response.web_search_call.in_progress")
    assert kinds[fetching - 1:fetching + 4] == [
        "response.output_item.added", "response.web_search_call.in_progress", "response.web_search_call.searching",
        "response.web_search_call.completed", "response.output_item.done"]
    running = kinds.index("response.code_interpreter_call.in_progress")
    assert kinds[running - 1:running + 6] == [
        "response.output_item.added", "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta", "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting", "response.code_interpreter_call.completed",
        "response.output_item.done"]
    added = events[running - 1].item
    assert (added.type, added.status, added.code, added.outputs) == ("code_interpreter_call", "in_progress", CODE,
                                                                     None)
    assert events[running + 2].code == CODE
    final = events[-1].response
    assert events[-1].type == "response.completed" and final.output_text == ANSWER
    check_output(final.output, page)
    assert (final.usage.input_tokens, final.usage.output_tokens) == (1500, 30)

    stored = client.responses.retrieve(final.id)
    check_output(stored.output, page)
    replayed = list(client.responses.retrieve(final.id, stream=True))
    assert [e.type for e in replayed if "code_interpreter" in e.type] == [
        k for k in kinds if "code_interpreter" in k]
    with pytest.raises(openai.NotFoundError):
        other_client.responses.retrieve(final.id)


def test_earlier_tool_items_sent_back_are_accepted(client, fake_openai, page_site):
    page = f"{page_site.address}{ARTICLE}"
    script(fake_openai, page)
    first = client.responses.create(model=GPT, input=QUESTION, tools=TOOLS, store=False)
    items = [item.model_dump(exclude_none=True) for item in first.output]
    fake_openai.enqueue(Reply(text="You are welcome."))
    second = client.responses.create(model=GPT, input=[*items, {"role": "user", "content": "Thanks!"}])
    assert second.output_text == "You are welcome."
    sent = fake_openai.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["assistant", "user"]  # the tools' items carry nothing the model reads back
    assert sent[0]["content"] == ANSWER
