"""Codex (`codex exec`) against the gateway's /v1/responses, as a user runs it in a terminal.

Its CODEX_HOME holds the config.toml of the Clients section of docs/REFERENCE.md: a model provider with the
gateway's base URL, `wire_api = "responses"`, the tg- key read from the variable `env_key` names,
analytics off. Codex prints the final answer on stdout and its log on stderr.
"""

from pathlib import Path

import pytest

from tests.clients.conftest import HERE, each_call_billed_once, quiet_env, run_client
from tests.fakes.openai_upstream import Reply

GPT = "openai/gpt-4o-mini"
MARK = "tollgate-tool-ran"
CONFIG = """\
model = "{model}"
model_provider = "tollgate"

[model_providers.tollgate]
name = "Tollgate"
base_url = "{base_url}/v1"
env_key = "TOLLGATE_API_KEY"
wire_api = "responses"

[analytics]
enabled = false
"""


def codex_exec(prompt: str, *, model: str, proxy_url: str, api_key: str, home: Path, recorder,
               extra_args: tuple[str, ...] = ()) -> str:
    """``codex exec <prompt>`` in a fresh workspace (not a git repository); what it printed on stdout."""
    codex_home, workspace = home / "codex", home / "workspace"
    codex_home.mkdir(parents=True, exist_ok=True)
    workspace.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(CONFIG.format(model=model, base_url=proxy_url))
    env = quiet_env(home, CODEX_HOME=str(codex_home), TOLLGATE_API_KEY=api_key)
    args = [str(HERE / "node_modules/.bin/codex"), "exec", "--strict-config", "--skip-git-repo-check", "--ephemeral",
            "--color", "never", *extra_args, prompt]
    return run_client(args, env=env, cwd=workspace, recorder=recorder).stdout


@pytest.fixture
def cli(node_modules, proxy_url, api_key, recorder, tmp_path):
    def run(prompt: str, model: str, *extra_args: str) -> str:
        return codex_exec(prompt, model=model, proxy_url=proxy_url, api_key=api_key, home=tmp_path,
                          recorder=recorder, extra_args=extra_args)
    return run


def test_say_hi_on_demo_echo(cli, recorder, tenant, other_tenant):
    assert cli("say hi", "demo/echo").strip() == "say hi"  # demo/echo answers with the user's message
    each_call_billed_once(recorder, tenant, other_tenant, calls=1)


def test_say_hi_on_gpt_behind_a_fake(cli, fake_openai, recorder, tenant, other_tenant):
    fake_openai.enqueue(Reply(text="Hi from the fake GPT!"))
    assert cli("say hi", GPT).strip() == "Hi from the fake GPT!"
    assert [request["body"]["model"] for request in fake_openai.requests] == ["gpt-4o-mini"]
    each_call_billed_once(recorder, tenant, other_tenant, calls=1)


def test_runs_a_command_the_model_asked_for_then_prints_the_answer(cli, fake_openai, recorder, tenant,
                                                                    other_tenant):
    fake_openai.enqueue(Reply(tool_call=("exec_command", f'{{"cmd": "echo {MARK}"}}')),
                        Reply(text="The command printed the mark."))
    # Unsandboxed, as Codex runs in a container or CI (it then offers live web search too).
    printed = cli("run echo", GPT, "--dangerously-bypass-approvals-and-sandbox")
    assert printed.strip() == "The command printed the mark."
    tool_answer = fake_openai.requests[-1]["body"]["messages"][-1]
    assert tool_answer["role"] == "tool" and MARK in str(tool_answer["content"])
    each_call_billed_once(recorder, tenant, other_tenant, calls=2)
