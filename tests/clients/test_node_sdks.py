"""The official Node SDKs (openai, @anthropic-ai/sdk) run by node, as a user's script would."""

import json

from tests.clients.conftest import each_call_billed_once, node_script
from tests.fakes.anthropic_upstream import Reply as ClaudeReply
from tests.fakes.openai_upstream import Reply


def test_openai_node_sdk_chat_stream_and_responses(node_modules, proxy_url, api_key, fake_openai, recorder,
                                                   tenant, other_tenant, tmp_path):
    fake_openai.enqueue(Reply(text="Hi from chat."), Reply(text="Hi from the stream."),
                        Reply(text="Hi from responses."))
    printed = node_script("openai_sdk.mjs", proxy_url=proxy_url, api_key=api_key, home=tmp_path,
                          recorder=recorder, TOLLGATE_MODEL="openai/gpt-4o-mini")
    assert json.loads(printed) == {"chat": "Hi from chat.", "stream": "Hi from the stream.",
                                   "responses": "Hi from responses."}
    each_call_billed_once(recorder, tenant, other_tenant, calls=3)


def test_anthropic_node_sdk_message_and_stream(node_modules, proxy_url, api_key, claude, recorder,
                                               tenant, other_tenant, tmp_path):
    claude.enqueue(ClaudeReply(text="Hi from Claude."), ClaudeReply(text="Hi again from Claude."))
    printed = node_script("anthropic_sdk.mjs", proxy_url=proxy_url, api_key=api_key, home=tmp_path,
                          recorder=recorder, TOLLGATE_MODEL="anthropic/claude-sonnet-4-5")
    assert json.loads(printed) == {"message": "Hi from Claude.", "stream": "Hi again from Claude."}
    each_call_billed_once(recorder, tenant, other_tenant, calls=2)
