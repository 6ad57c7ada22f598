"""The OpenAI Agents SDK: an Agent with a function tool, run by the Runner against the gateway.

The gateway's model ids carry a provider prefix (``openai/gpt-4o-mini``, ``demo/echo``), which the
SDK would otherwise read as its own routing prefix: ``openai/`` stripped, any other refused. A
MultiProvider with both prefix modes set to ``model_id`` sends the id as written (docs/REFERENCE.md, Clients).
"""

import asyncio

import pytest
from agents import Agent, RunConfig, Runner, RunResult, function_tool, set_tracing_disabled
from agents.models.multi_provider import MultiProvider
from openai import AsyncOpenAI

from tests.clients.conftest import each_call_billed_once
from tests.fakes.anthropic_upstream import Reply as ClaudeReply
from tests.fakes.openai_upstream import Reply


@pytest.fixture(autouse=True)
def no_tracing():
    set_tracing_disabled(True)  # the SDK would otherwise export traces to api.openai.com


def run_on_gateway(agent: Agent, prompt: str, proxy_url: str, api_key: str, *, responses: bool) -> RunResult:
    """Runner.run with the gateway as the OpenAI endpoint, its client opened and closed on the run's loop."""
    async def main() -> RunResult:
        async with AsyncOpenAI(base_url=f"{proxy_url}/v1", api_key=api_key, max_retries=0) as client:
            provider = MultiProvider(openai_client=client, openai_use_responses=responses,
                                     openai_prefix_mode="model_id", unknown_prefix_mode="model_id")
            return await Runner.run(agent, prompt, run_config=RunConfig(model_provider=provider))
    return asyncio.run(main())


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_agent_runs_a_tool_then_answers_on_the_responses_api(proxy_url, api_key, fake_openai, recorder,
                                                              tenant, other_tenant):
    fake_openai.enqueue(Reply(tool_call=("get_weather", '{"city": "Paris"}')), Reply(text="It is sunny in Paris."))
    agent = Agent(name="Weather", instructions="Answer with the weather.", model="openai/gpt-4o-mini",
                  tools=[get_weather])
    result = run_on_gateway(agent, "What is the weather in Paris?", proxy_url, api_key, responses=True)
    assert result.final_output == "It is sunny in Paris."
    assert [exchange.path for exchange in recorder.model_calls] == ["/v1/responses"] * 2
    tool_answer = fake_openai.requests[-1]["body"]["messages"][-1]
    assert tool_answer["role"] == "tool" and tool_answer["content"] == "sunny in Paris"
    assert fake_openai.requests[0]["body"]["model"] == "gpt-4o-mini"
    each_call_billed_once(recorder, tenant, other_tenant, calls=2)


def test_agent_on_chat_completions_with_a_claude_model(proxy_url, api_key, claude, recorder, tenant, other_tenant):
    claude.enqueue(ClaudeReply(text="Hi from Claude."))
    agent = Agent(name="Greeter", instructions="Be brief.", model="anthropic/claude-sonnet-4-5")
    result = run_on_gateway(agent, "say hi", proxy_url, api_key, responses=False)
    assert result.final_output == "Hi from Claude."
    assert [exchange.path for exchange in recorder.model_calls] == ["/v1/chat/completions"]
    each_call_billed_once(recorder, tenant, other_tenant, calls=1)
