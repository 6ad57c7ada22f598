"""The reference Python executor (executor/, `manage.py run_executor`) over a real socket on
127.0.0.1, and the gateway's client of it (providers/code_executor.py) pointed at it."""

import os
import socket
from ast import literal_eval

import httpx
import pytest
from django.core.management import CommandError, call_command

from executor.sandbox import MIB, Limits
from executor.server import make_app
from providers import errors
from providers.code_executor import ExecutionResult, run_code
from tests.conftest import free_port, run_adapter_call
from tests.fakes.server import ThreadedServer

KEY = "executor-test-key"


class ExecutorServer(ThreadedServer):
    thread_name = "python-executor"

    def app(self):
        return make_app(key=KEY, limits=Limits(memory_bytes=256 * MIB, output_bytes=4096, max_timeout=5),
                        concurrency=2)


@pytest.fixture(scope="module")
def executor():
    server = ExecutorServer().start()
    yield server
    server.stop()


def run(executor, code: str, *, timeout: float = 5, key: str | None = KEY) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{executor.address}/run", json={"code": code, "timeout": timeout}, headers=headers, timeout=30)


def ran(executor, code: str, *, timeout: float = 5) -> dict:
    answer = run(executor, code, timeout=timeout)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_last_expression_is_the_result_and_prints_are_stdout(executor):
    body = ran(executor, "x = 6\nprint('hello from the cell')\nx * 7")
    assert body["result"] == "42" and body["stdout"] == "hello from the cell\n"
    assert body["error"] is None and body["timed_out"] is False and body["duration_ms"] >= 0


def test_a_cell_ending_in_a_statement_or_none_has_no_result(executor):
    assert ran(executor, "x = 1")["result"] is None
    assert ran(executor, "print('only output')")["result"] is None


def test_an_exception_is_the_answer_with_the_cells_traceback(executor):
    body = ran(executor, "print('before')\ndef half(n):\n    return n / 0\nhalf(4)")
    assert body["stdout"] == "before\n" and body["result"] is None
    assert body["error"].startswith("Traceback") and body["error"].endswith("ZeroDivisionError: division by zero")
    assert 'File "<cell>", line 3, in half' in body["error"] and "runner.py" not in body["error"]


def test_a_syntax_error_says_where(executor):
    body = ran(executor, "def f(:\n    pass")
    assert "SyntaxError" in body["error"] and '"<cell>", line 1' in body["error"]


def test_a_loop_past_its_time_limit_is_stopped(executor):
    body = ran(executor, "print('started', flush=True)\nwhile True:\n    pass", timeout=0.5)
    assert body["timed_out"] is True and "time limit" in body["error"]
    assert body["stdout"] == "started\n"  # what it printed before the limit still comes back


def test_an_allocation_past_the_memory_limit_fails_with_memory_error(executor):
    body = ran(executor, "data = bytearray(1024 * 1024 * 1024)")  # 1 GiB against a 256 MiB limit
    assert body["error"].endswith("MemoryError") and body["timed_out"] is False


def test_the_network_is_refused_and_nothing_is_reached(executor):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        body = ran(executor, f"import socket\nsocket.socket().connect(('127.0.0.1', {port}))")
        assert "PermissionError" in body["error"] and "without network access" in body["error"]
        lookup = ran(executor, "import socket\nsocket.getaddrinfo('example.com', 443)")
        assert "PermissionError" in lookup["error"]
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # a connection would be waiting in the backlog
            listener.accept()


def test_subprocesses_are_refused(executor):
    body = ran(executor, "import subprocess\nsubprocess.run(['true'])")
    assert "PermissionError" in body["error"] and "subprocess.Popen" in body["error"]


def test_each_cell_runs_in_a_fresh_temporary_directory_without_the_executors_environment(executor):
    first = literal_eval(ran(executor, "import os\nopen('note.txt', 'w').write('kept?')\nos.getcwd()")["result"])
    second, kept, names = literal_eval(ran(
        executor, "import os\n(os.getcwd(), os.path.exists('note.txt'), sorted(os.environ))")["result"])
    assert second != first and not kept and not os.path.exists(first)  # removed after its cell
    assert names == ["HOME", "LANG", "LC_ALL", "PATH", "TMPDIR"]  # no proxies, no key of the executor's


def test_output_past_the_cap_is_cut(executor):
    body = ran(executor, "print('x' * 100_000)")
    assert body["stdout"].startswith("x" * 4096) and body["stdout"].endswith("[output cut at 4096 bytes]")


@pytest.mark.parametrize("key", ["wrong-key", None])
def test_a_wrong_or_missing_key_is_refused(executor, key):
    answer = run(executor, "print('never runs')", key=key)
    assert answer.status_code == 401 and "PYTHON_EXECUTOR_KEY" in answer.json()["error"]


@pytest.mark.parametrize("body", [{"timeout": 1}, {"code": 1}, {"code": "1", "timeout": -1}, ["1"]])
def test_a_body_that_is_not_a_run_is_a_400(executor, body):
    answer = httpx.post(f"{executor.address}/run", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 400 and answer.json()["error"]


def test_the_command_refuses_to_start_without_a_key(settings):
    settings.PYTHON_EXECUTOR_KEY = ""
    with pytest.raises(CommandError, match="PYTHON_EXECUTOR_KEY"):
        call_command("run_executor")


# --- the gateway's client -------------------------------------------------------------------

@pytest.fixture
def configured(settings, executor):
    settings.PYTHON_EXECUTOR_URL = f"{executor.address}/"
    settings.PYTHON_EXECUTOR_KEY = KEY


def test_the_client_gets_stdout_result_and_errors(configured):
    result = run_adapter_call(run_code("print('hi')\n2 ** 10", timeout=5))
    assert isinstance(result, ExecutionResult)
    assert (result.stdout, result.result, result.error, result.timed_out) == ("hi\n", "1024", None, False)
    failed = run_adapter_call(run_code("int('x')", timeout=5))
    assert failed.error.endswith("ValueError: invalid literal for int() with base 10: 'x'")


def test_the_client_reports_a_timeout_as_a_result(configured):
    result = run_adapter_call(run_code("while True:\n    pass", timeout=0.5))
    assert result.timed_out is True and result.seconds > 0


def test_a_refused_key_is_the_operators_problem(configured, settings):
    settings.PYTHON_EXECUTOR_KEY = "stale-key"
    with pytest.raises(errors.ProviderAuthFailed) as caught:
        run_adapter_call(run_code("1", timeout=5))
    assert caught.value.status == 502 and "PYTHON_EXECUTOR_KEY" in caught.value.message


def test_an_unreachable_executor_is_unavailable(settings):
    settings.PYTHON_EXECUTOR_URL, settings.PYTHON_EXECUTOR_KEY = f"http://127.0.0.1:{free_port()}", KEY
    with pytest.raises(errors.ProviderUnavailable) as caught:
        run_adapter_call(run_code("1", timeout=5))
    assert caught.value.retryable


def test_without_an_executor_the_tool_is_unavailable(settings):
    settings.PYTHON_EXECUTOR_URL = ""
    with pytest.raises(errors.UnsupportedFeature, match="PYTHON_EXECUTOR_URL"):
        run_adapter_call(run_code("1", timeout=5))
