"""The client suite: real clients at pinned versions against the gateway, providers faked.

Python clients (pyproject's dev pins) run in this process; Node clients and the coding CLIs
(tests/clients/package-lock.json, installed by tests/ensure_clients.sh) run as subprocesses with
a temporary HOME and every kind of telemetry off. Each reaches the gateway through a recording
proxy, so a test sees every request the client chose to make and holds the usage records
against them: exactly one per model call, under the caller's tenant, none under another's.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clients.recorder import RecordingProxy
from tests.conftest import wait_for
from usage.models import UsageRecord

HERE = Path(__file__).parent
NODE_MODULES = HERE / "node_modules"
SUBPROCESS_TIMEOUT = 120

# Set before any client is imported: LiteLLM fetches its price list from GitHub at import unless
# told to use its bundled copy, and sends telemetry unless told not to; LangSmith traces only when
# asked; the Agents SDK exports traces to OpenAI unless disabled.
os.environ.update({
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "OPENAI_AGENTS_DISABLE_TRACING": "1",
})


@pytest.fixture(scope="session")
def recorder(gateway_url):
    proxy = RecordingProxy(gateway_url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy_url(recorder) -> str:
    """The gateway's address as the clients are given it (through the recorder)."""
    recorder.reset()
    return recorder.address


def each_call_billed_once(recorder: RecordingProxy, tenant, other_tenant, *, calls: int | None = None) -> None:
    """Every model call the client made was answered, and left exactly one usage record (matched
    by the gateway's request id) under ``tenant`` and none under ``other_tenant``. ``calls``: how
    many model calls the user's action must take, when the client's behaviour fixes it."""
    made = recorder.model_calls
    refused = [exchange.describe() for exchange in made if exchange.status != 200]
    assert not refused, "the gateway refused:\n" + "\n".join(refused)
    if calls is not None:
        assert len(made) == calls, recorder.report()
    ids = {exchange.request_id for exchange in made}
    assert len(ids) == len(made) and "" not in ids, recorder.report()
    wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).count() >= len(made),
             what=f"{len(made)} usage records")
    records = list(UsageRecord.objects.filter(tenant=tenant))
    assert sorted(record.request_id for record in records) == sorted(ids)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


@pytest.fixture(scope="session")
def node_modules() -> Path:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: run tests/ensure_clients.sh (make test-clients does)")
    if not (NODE_MODULES / ".package-lock.json").exists():
        pytest.fail(f"{NODE_MODULES} is missing: run tests/ensure_clients.sh (make test-clients does)")
    return NODE_MODULES


def quiet_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a client subprocess: a HOME of its own, no inherited keys, telemetry off,
    and a proxy that refuses every connection for whatever a client would still send past
    127.0.0.1 (the gateway is reached directly)."""
    home.mkdir(parents=True, exist_ok=True)
    nowhere = "http://127.0.0.1:9"  # the discard port: nothing listens
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
        "TMPDIR": str(home), "NO_COLOR": "1", "CI": "1", "NODE_OPTIONS": "--no-deprecation", "DO_NOT_TRACK": "1",
        "HTTP_PROXY": nowhere, "HTTPS_PROXY": nowhere, "ALL_PROXY": nowhere, "NO_PROXY": "127.0.0.1,localhost",
        **extra,
    }


def run_client(args: list[str], *, env: dict[str, str], cwd: Path, recorder: RecordingProxy,
               stdin: str = "") -> subprocess.CompletedProcess:
    """Runs a client to completion (``stdin`` its input, empty by default); on failure or timeout
    the assertion shows its output and every request it made through the gateway (with the
    gateway's refusals)."""
    try:
        done = subprocess.run(args, env=env, cwd=cwd, input=stdin, capture_output=True, text=True,
                              timeout=SUBPROCESS_TIMEOUT)
    except subprocess.TimeoutExpired as timeout:
        raise AssertionError(f"{args[0]} did not finish within {SUBPROCESS_TIMEOUT}s\nstdout:\n{timeout.stdout}\n"
                             f"stderr:\n{timeout.stderr}\nrequests:\n{recorder.report()}") from None
    assert done.returncode == 0, (f"{' '.join(args[:2])} exited {done.returncode}\nstdout:\n{done.stdout}\n"
                                  f"stderr:\n{done.stderr}\nrequests:\n{recorder.report()}")
    return done


def node_script(name: str, *, proxy_url: str, api_key: str, home: Path, recorder: RecordingProxy,
                **extra: str) -> str:
    """Runs tests/clients/<name>.mjs with node; its stdout (what it printed for the user)."""
    env = quiet_env(home, TOLLGATE_BASE_URL=proxy_url, TOLLGATE_API_KEY=api_key, **extra)
    return run_client(["node", str(HERE / name)], env=env, cwd=HERE, recorder=recorder).stdout
