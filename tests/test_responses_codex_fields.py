"""POST /v1/responses as Codex CLI (wire_api = "responses") and other agent clients send it, with
the official openai SDK: bookkeeping fields accepted, namespace tools flattened for the model and
their calls answered with their namespace, tools the gateway cannot run dropped unless the model
is made to call them, text.verbosity, logprobs, max_tool_calls and prompt by the argument rule."""

import json

import openai
import pytest

from tests.conftest import wait_for
from tests.fakes.openai_upstream import DEFAULT_REPLY, Reply
from usage.models import UsageRecord

GPT = "openai/gpt-4o-mini"
CODEX_MODEL = "openai/gpt-5-mini"  # a reasoning model: Codex sends reasoning
CLAUDE = "anthropic/claude-sonnet-4-5"
SHELL = {"type": "function", "name": "shell_command", "strict": False,
         "description": "Runs a shell command and returns its output.",
         "parameters": {"type": "object", "properties": {
             "command": {"type": "string", "description": "The shell script to execute"},
             "workdir": {"type": "string"}, "timeout_ms": {"type": "number"}},
             "required": ["command"], "additionalProperties": False}}
APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Use the `apply_patch` tool to edit files.",
               "format": {"type": "grammar", "syntax": "lark",
                          "definition": 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF'}}
UPDATE_PLAN = {"type": "function", "name": "update_plan", "strict": False, "description": "Updates the task plan.",
               "parameters": {"type": "object", "properties": {"plan": {"type": "array", "items": {
                   "type": "object", "properties": {"step": {"type": "string"}, "status": {"type": "string"}},
                   "required": ["step", "status"], "additionalProperties": False}}},
                   "required": ["plan"], "additionalProperties": False}}
GITHUB = {"type": "namespace", "name": "mcp__github", "description": "Tools in the mcp__github namespace.",
          "tools": [{"type": "function", "name": "search_issues", "strict": False,
                     "description": "Search issues in a repository.",
                     "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                                    "required": ["query"]}}]}
CACHED_SEARCH = {"type": "web_search", "external_web_access": False}
CODEX_TOOLS = [SHELL, APPLY_PATCH, UPDATE_PLAN, CACHED_SEARCH, GITHUB]
CODEX_INPUT = [
    {"type": "message", "role": "developer", "content": [
        {"type": "input_text", "text": "<permissions instructions>Filesystem sandboxing: workspace-write."
                                       "</permissions instructions>"}]},
    {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "# AGENTS.md instructions for /home/dev/app\n\nRun the tests first."}]},
    {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "<environment_context>\n  <cwd>/home/dev/app</cwd>\n  <shell>bash</shell>\n"
                                       "</environment_context>"}]},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Find the open flaky-test issue"}]},
]
CLIENT_METADATA = {"x-codex-installation-id": "9b2d4e0c-3f7a-4c51-9d0e-2a6b8c1f5e37"}


def codex_request(client, *, model=CODEX_MODEL, stream=True, **overrides):
    """A turn as Codex sends it (codex-rs ResponsesApiRequest): streamed, stateless, cached by thread."""
    body = dict(model=model, instructions="You are Codex, a coding agent.", input=CODEX_INPUT, tools=CODEX_TOOLS,
                tool_choice="auto", parallel_tool_calls=True, reasoning={"effort": "medium", "summary": "auto"},
                store=False, stream=stream, include=["reasoning.encrypted_content"],
                prompt_cache_key="019a3c1e-7d2b-7f40-9a55-3e1d2c4b6a70", text={"verbosity": "low"},
                max_tool_calls=8, extra_body={"client_metadata": CLIENT_METADATA})
    body.update(overrides)
    return client.responses.create(**body)


def record_count(tenant) -> int:
    return UsageRecord.objects.filter(tenant=tenant).count()


def test_a_codex_turn_is_served_with_the_tools_the_model_can_call(client, fake_openai, tenant, other_tenant):
    events = list(codex_request(client))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    response = events[-1].response
    assert response.output_text == DEFAULT_REPLY and response.max_tool_calls == 8
    assert response.text.verbosity == "low"
    sent = fake_openai.requests[-1]["body"]
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["shell_command", "update_plan",
                                                                     "mcp__github__search_issues"]
    assert sent["tool_choice"] == "auto" and sent["verbosity"] == "low"
    assert not {"client_metadata", "prompt_cache_key", "max_tool_calls", "include", "store"} & set(sent)
    assert "Find the open flaky-test issue" in json.dumps(sent["messages"])
    wait_for(lambda: record_count(tenant) == 1, what="the usage record")
    assert record_count(other_tenant) == 0
    with pytest.raises(openai.NotFoundError):  # store: false, as Codex sends it: nothing kept
        client.responses.retrieve(response.id)


@pytest.mark.parametrize("stream", [False, True])
def test_a_namespace_tool_call_is_answered_with_its_namespace_and_replayed(
        client, other_client, fake_openai, tenant, stream):
    fake_openai.enqueue(Reply(tool_call=("mcp__github__search_issues", '{"query": "flaky"}')))
    answer = codex_request(client, stream=stream, store=True)
    response = list(answer)[-1].response if stream else answer
    [call] = [item for item in response.output if item.type == "function_call"]
    assert (call.name, call.namespace, json.loads(call.arguments)) == ("search_issues", "mcp__github",
                                                                       {"query": "flaky"})
    with pytest.raises(openai.NotFoundError):
        other_client.responses.retrieve(response.id)
    # Codex sends the call back as it came, with its output: the model sees its own flat name again.
    replayed = {"type": "function_call", "call_id": call.call_id, "name": call.name, "namespace": call.namespace,
                "arguments": call.arguments}
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "#412 flaky login test"}
    list(codex_request(client, input=[*CODEX_INPUT, replayed, output]))
    messages = fake_openai.requests[-1]["body"]["messages"]
    assert messages[-2]["tool_calls"][0]["function"]["name"] == "mcp__github__search_issues"
    assert messages[-1] == {"role": "tool", "content": "#412 flaky login test", "tool_call_id": call.call_id}
    assert record_count(tenant) == 2


def test_a_default_namespace_keeps_bare_names(client, fake_openai):
    functions = {"type": "namespace", "name": "functions", "description": "", "tools": [
        {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}}},
        {"type": "custom", "name": "exec", "format": {"type": "text"}}]}
    fake_openai.enqueue(Reply(tool_call=("exec_command", "{}")))
    response = codex_request(client, stream=False, tools=[functions])
    assert [tool["function"]["name"] for tool in fake_openai.requests[-1]["body"]["tools"]] == ["exec_command"]
    [call] = response.output
    assert (call.name, call.namespace) == ("exec_command", "functions")


def test_live_web_search_is_not_run_when_max_tool_calls_is_zero(client, fake_openai, tenant):
    # No search engine is configured here: a search would be refused, so being served shows none ran.
    response = client.responses.create(model=GPT, input="What's new?", tools=[{"type": "web_search"}],
                                       max_tool_calls=0)
    assert response.status == "completed" and response.max_tool_calls == 0
    assert not [item for item in response.output if item.type == "web_search_call"]
    assert len(fake_openai.requests) == 1 and record_count(tenant) == 1


@pytest.mark.parametrize(("overrides", "names"), [
    ({"tool_choice": {"type": "custom", "name": "apply_patch"}}, "apply_patch"),
    ({"tool_choice": {"type": "function", "name": "exec"},
      "tools": [{"type": "namespace", "name": "functions", "description": "",
                 "tools": [{"type": "custom", "name": "exec", "format": {"type": "text"}}]}]}, "exec"),
    ({"tool_choice": "required", "tools": [APPLY_PATCH, CACHED_SEARCH]}, "apply_patch"),
    ({"tool_choice": {"type": "web_search"}}, "web_search"),
    ({"tool_choice": {"type": "image_generation"}}, "image_generation"),
])
def test_a_dropped_tool_the_model_is_made_to_call_is_refused(client, fake_openai, tenant, overrides, names):
    with pytest.raises(openai.BadRequestError) as refused:
        codex_request(client, stream=False, **overrides)
    assert refused.value.body["param"] == "tool_choice"
    assert f"'{names}'" in refused.value.body["message"] and "cannot run" in refused.value.body["message"]
    assert not fake_openai.requests and record_count(tenant) == 0


def test_a_stored_prompt_is_refused_naming_model_and_prompt(client, fake_openai, tenant):
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=GPT, input="hi", prompt={"id": "pmpt_68ab12", "version": "2"})
    assert refused.value.body["param"] == "prompt" and GPT in refused.value.body["message"]
    assert not fake_openai.requests and record_count(tenant) == 0
    client.responses.create(model=GPT, input="hi", prompt=None)  # null is no prompt
    assert len(fake_openai.requests) == 1


def test_verbosity_follows_the_rule_on_a_model_that_takes_none(client, claude, tenant):
    response = client.responses.create(model=CLAUDE, input="hi", text={"verbosity": "medium"})
    assert response.status == "completed" and "verbosity" not in claude.bodies[-1]
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=CLAUDE, input="hi", text={"verbosity": "low"})
    assert refused.value.body["param"] == "verbosity" and CLAUDE in refused.value.body["message"]
    assert len(claude.requests) == 1 and record_count(tenant) == 1


def test_logprobs_asked_with_include_reach_the_output_text(client, other_client, fake_openai, tenant):
    response = client.responses.create(model=GPT, input="Say hello", include=["message.output_text.logprobs"],
                                       top_logprobs=2)
    sent = fake_openai.requests[-1]["body"]
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    logprobs = response.output[0].content[0].logprobs
    assert "".join(token.token for token in logprobs) == DEFAULT_REPLY
    assert [alt.token for alt in logprobs[1].top_logprobs] == [" from", " alt1"]
    assert response.top_logprobs == 2
    assert client.responses.retrieve(response.id).output[0].content[0].logprobs[0].token == "Hello"
    with pytest.raises(openai.NotFoundError):
        other_client.responses.retrieve(response.id)
    # top_logprobs alone, without the include, asks for nothing: not forwarded.
    client.responses.create(model=GPT, input="Say hello", top_logprobs=2)
    assert "logprobs" not in fake_openai.requests[-1]["body"]


def test_streamed_logprobs_come_with_each_text_delta(client, fake_openai):
    events = list(client.responses.create(model=GPT, input="Say hello", stream=True,
                                          include=["message.output_text.logprobs"]))
    deltas = [event for event in events if event.type == "response.output_text.delta"]
    assert "".join(token.token for event in deltas for token in event.logprobs) == DEFAULT_REPLY
    [done] = [event for event in events if event.type == "response.output_text.done"]
    assert len(done.logprobs) == len(DEFAULT_REPLY.split(" "))
