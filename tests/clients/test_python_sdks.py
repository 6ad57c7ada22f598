"""The official Python SDKs, one call of each kind (the rest of the suite covers them in depth)."""

import anthropic
import openai

from tests.clients.conftest import each_call_billed_once
from tests.fakes.anthropic_upstream import Reply as ClaudeReply
from tests.fakes.openai_upstream import Reply

GPT = "openai/gpt-4o-mini"
CLAUDE = "anthropic/claude-sonnet-4-5"


def test_openai_chat_completion_and_stream(proxy_url, api_key, fake_openai, recorder, tenant, other_tenant):
    fake_openai.enqueue(Reply(text="Hi from GPT."))
    with openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=api_key, max_retries=0) as sdk:
        completion = sdk.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "say hi"}])
        chunks = sdk.chat.completions.create(model="demo/echo", stream=True, stream_options={"include_usage": True},
                                             messages=[{"role": "user", "content": "hi there"}])
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert completion.choices[0].message.content == "Hi from GPT."
    assert streamed == "hi there"
    each_call_billed_once(recorder, tenant, other_tenant, calls=2)


def test_openai_responses_on_claude(proxy_url, api_key, claude, recorder, tenant, other_tenant):
    claude.enqueue(ClaudeReply(text="Hi from Claude."))
    with openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=api_key, max_retries=0) as sdk:
        response = sdk.responses.create(model=CLAUDE, input="say hi")
    assert response.output_text == "Hi from Claude."
    each_call_billed_once(recorder, tenant, other_tenant, calls=1)


def test_anthropic_messages_and_stream(proxy_url, api_key, claude, fake_openai, recorder, tenant, other_tenant):
    claude.enqueue(ClaudeReply(text="Hi from Claude."))
    fake_openai.enqueue(Reply(text="Hi from GPT."))
    with anthropic.Anthropic(base_url=proxy_url, api_key=api_key, max_retries=0) as sdk:
        message = sdk.messages.create(model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "say hi"}])
        with sdk.messages.stream(model=GPT, max_tokens=100, messages=[{"role": "user", "content": "say hi"}]) as stream:
            streamed = "".join(stream.text_stream)
    assert message.content[0].text == "Hi from Claude."
    assert streamed == "Hi from GPT."
    each_call_billed_once(recorder, tenant, other_tenant, calls=2)
