"""LiteLLM as a client: its `openai/` route (any OpenAI-compatible server) and its `anthropic/`
route, each with the gateway's model id after the route's prefix."""

import asyncio

import litellm
import pytest

from tests.clients.conftest import each_call_billed_once
from tests.fakes.anthropic_upstream import Reply as ClaudeReply

# LiteLLM's GitHub Copilot module, imported on the first call, declares a TypedDict pydantic warns about.
pytestmark = pytest.mark.filterwarnings("ignore:.*using the `ReadOnly` qualifier:UserWarning")

SAY_HI = [{"role": "user", "content": "say hi"}]


@pytest.fixture(scope="module", autouse=True)
def close_litellms_event_loop():
    """A sync call sets an event loop on the main thread (for LiteLLM's logging) that nothing closes;
    closed here rather than left to the garbage collector after another test's asyncio.run."""
    yield
    policy = asyncio.get_event_loop_policy()
    policy.get_event_loop().close()
    policy.set_event_loop(None)


def test_openai_route_completion_and_stream(proxy_url, api_key, recorder, tenant, other_tenant):
    reply = litellm.completion(model="openai/demo/echo", api_base=f"{proxy_url}/v1", api_key=api_key,
                               messages=SAY_HI, num_retries=0)
    chunks = litellm.completion(model="openai/demo/echo", api_base=f"{proxy_url}/v1", api_key=api_key,
                                messages=[{"role": "user", "content": "hi there"}], stream=True, num_retries=0)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert reply.choices[0].message.content == "say hi"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (2, 2)
    assert streamed == "hi there"
    each_call_billed_once(recorder, tenant, other_tenant, calls=2)


def test_anthropic_route_on_claude(proxy_url, api_key, claude, recorder, tenant, other_tenant):
    claude.enqueue(ClaudeReply(text="Hi from Claude."))
    reply = litellm.completion(model="anthropic/anthropic/claude-sonnet-4-5", api_base=proxy_url, api_key=api_key,
                               messages=SAY_HI, max_tokens=100, num_retries=0)
    assert reply.choices[0].message.content == "Hi from Claude."
    [sent] = claude.bodies
    assert sent["model"] == "claude-sonnet-4-5"
    each_call_billed_once(recorder, tenant, other_tenant, calls=1)
