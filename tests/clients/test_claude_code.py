"""Claude Code (`claude -p`) against the gateway's /v1/messages, as a user runs it in a terminal.

Its environment is what the Clients section of docs/REFERENCE.md gives a user: the gateway as
ANTHROPIC_BASE_URL, the tg- key as ANTHROPIC_API_KEY, the gateway's model id for every model
Claude Code picks (main and small), telemetry, error reports and update checks off.
"""

from pathlib import Path

import pytest

from tests.clients.conftest import HERE, each_call_billed_once, quiet_env, run_client
from tests.fakes.anthropic_upstream import Reply, thinking_block

CLAUDE = "anthropic/claude-sonnet-4-5"
MARK = "tollgate-tool-ran"


def claude_code(prompt: str, *, model: str, proxy_url: str, api_key: str, home: Path, recorder,
                extra_args: tuple[str, ...] = ()) -> str:
    """``claude -p <prompt>`` in a fresh workspace; what it printed."""
    workspace = home / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    env = quiet_env(
        home, ANTHROPIC_BASE_URL=proxy_url, ANTHROPIC_API_KEY=api_key, ANTHROPIC_MODEL=model,
        ANTHROPIC_SMALL_FAST_MODEL=model, ANTHROPIC_DEFAULT_HAIKU_MODEL=model, ANTHROPIC_DEFAULT_SONNET_MODEL=model,
        ANTHROPIC_DEFAULT_OPUS_MODEL=model, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1", DISABLE_AUTOUPDATER="1", DISABLE_BUG_COMMAND="1")
    args = [str(HERE / "node_modules/.bin/claude"), "-p", prompt, "--model", model, *extra_args]
    return run_client(args, env=env, cwd=workspace, recorder=recorder).stdout


@pytest.fixture
def cli(node_modules, proxy_url, api_key, recorder, tmp_path):
    def run(prompt: str, model: str, *extra_args: str) -> str:
        return claude_code(prompt, model=model, proxy_url=proxy_url, api_key=api_key, home=tmp_path,
                           recorder=recorder, extra_args=extra_args)
    return run


def test_say_hi_on_demo_echo(cli, recorder, tenant, other_tenant):
    printed = cli("say hi", "demo/echo")
    # demo/echo answers with the user's message: Claude Code's context reminders, then the prompt.
    assert printed.rstrip().endswith("say hi")
    each_call_billed_once(recorder, tenant, other_tenant, calls=1)


def test_say_hi_on_claude_behind_a_fake(cli, claude, recorder, tenant, other_tenant):
    claude.enqueue(Reply(text="Hi from the fake Claude!"))
    printed = cli("say hi", CLAUDE)
    assert printed.strip() == "Hi from the fake Claude!"
    assert [body["model"] for body in claude.bodies] == ["claude-sonnet-4-5"]
    each_call_billed_once(recorder, tenant, other_tenant, calls=1)


def test_runs_a_tool_the_model_asked_for_then_prints_the_answer(cli, claude, recorder, tenant, other_tenant):
    thinking = "The user wants the echo run."
    claude.enqueue(Reply(thinking=thinking, text="",
                         tool_calls=[("Bash", {"command": f"echo {MARK}", "description": "Print a mark"})]),
                   Reply(text="The command printed the mark."))
    printed = cli("run echo", CLAUDE, "--allowedTools", "Bash(echo:*)")
    assert printed.strip() == "The command printed the mark."
    last = claude.bodies[-1]["messages"]
    [asked] = [message for message in last if message["role"] == "assistant"]
    assert asked["content"][0] == thinking_block(thinking)  # replayed first, with its signature
    results = [block for message in last if message["role"] == "user" and isinstance(message["content"], list)
               for block in message["content"] if block.get("type") == "tool_result"]
    assert len(results) == 1 and MARK in str(results[0]["content"])
    each_call_billed_once(recorder, tenant, other_tenant, calls=2)
