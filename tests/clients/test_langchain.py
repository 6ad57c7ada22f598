"""LangChain's ChatOpenAI and ChatAnthropic pointed at the gateway."""

from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI

from tests.clients.conftest import each_call_billed_once
from tests.fakes.anthropic_upstream import Reply as ClaudeReply
from tests.fakes.openai_upstream import Reply


def test_chat_openai_invoke_and_stream(proxy_url, api_key, fake_openai, recorder, tenant, other_tenant):
    fake_openai.enqueue(Reply(text="Hi from GPT."))
    gpt = ChatOpenAI(model="openai/gpt-4o-mini", base_url=f"{proxy_url}/v1", api_key=api_key, max_retries=0)
    echo = ChatOpenAI(model="demo/echo", base_url=f"{proxy_url}/v1", api_key=api_key, max_retries=0)
    answer = gpt.invoke("say hi")
    streamed = "".join(chunk.text for chunk in echo.stream("hi there"))
    assert answer.content == "Hi from GPT."
    assert answer.usage_metadata["output_tokens"] == 3
    assert streamed == "hi there"
    each_call_billed_once(recorder, tenant, other_tenant, calls=2)


def test_chat_anthropic_invoke(proxy_url, api_key, claude, recorder, tenant, other_tenant):
    claude.enqueue(ClaudeReply(text="Hi from Claude."))
    model = ChatAnthropic(model="anthropic/claude-sonnet-4-5", base_url=proxy_url, api_key=api_key,
                          max_tokens=100, max_retries=0)
    answer = model.invoke("say hi")
    assert answer.text == "Hi from Claude."
    each_call_billed_once(recorder, tenant, other_tenant, calls=1)
