"""The Vercel AI SDK (ai + @ai-sdk/openai) on the Responses API: a two-step tool loop."""

import json

from tests.clients.conftest import each_call_billed_once, node_script
from tests.fakes.openai_upstream import Reply


def test_generate_text_calls_a_tool_then_answers(node_modules, proxy_url, api_key, fake_openai, recorder,
                                                 tenant, other_tenant, tmp_path):
    fake_openai.enqueue(Reply(tool_call=("get_weather", '{"city": "Paris"}')), Reply(text="It is sunny in Paris."))
    printed = node_script("vercel_tool_loop.mjs", proxy_url=proxy_url, api_key=api_key, home=tmp_path,
                          recorder=recorder, TOLLGATE_MODEL="openai/gpt-4o-mini")
    assert json.loads(printed) == {"text": "It is sunny in Paris.", "steps": 2, "toolResults": ["sunny in Paris"]}
    assert [exchange.path for exchange in recorder.model_calls] == ["/v1/responses"] * 2
    tool_answer = fake_openai.requests[-1]["body"]["messages"][-1]
    assert tool_answer["role"] == "tool" and "sunny in Paris" in tool_answer["content"]
    each_call_billed_once(recorder, tenant, other_tenant, calls=2)
