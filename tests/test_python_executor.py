"""The reference Python executor (executor/, `manage.py run_executor`) over a real socket on
127.0.0.1, and the gateway's client of it (providers/code_executor.py) pointed at it."""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from ast import literal_eval
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

import executor as executor_package
from executor.sandbox import MIB, Limits
from executor.server import make_app
from providers import errors
from providers.code_executor import ExecutionResult, run_code
from tests.conftest import free_port, run_adapter_call, wait_for
from tests.fakes.server import ThreadedServer

KEY = "executor-test-key"
UNPRIVILEGED = {"user": 65534, "group": 65534, "extra_groups": []}  # nobody, for what the tests start as root
INTERFACES = "sorted(line.split(':')[0].strip() for line in open('/proc/self/net/dev').read().splitlines()[2:])"


def snippet_python() -> str:
    """The executor's default interpreter, unless the tests run as root (snippets then run as
    nobody) and it sits where nobody cannot read it, as a pyenv under /root does: the system's."""
    default = Limits().python
    if os.geteuid() != 0 or all(folder.stat().st_mode & stat.S_IXOTH for folder in Path(default).resolve().parents):
        return default
    return shutil.which("python3", path="/usr/local/bin:/usr/bin")


class ExecutorServer(ThreadedServer):
    thread_name = "python-executor"

    def app(self):
        limits = Limits(memory_bytes=256 * MIB, output_bytes=4096, max_timeout=5, python=snippet_python())
        return make_app(key=KEY, limits=limits, concurrency=2)


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


@pytest.fixture
def shared_dir():
    """A folder the snippets (nobody, when the tests run as root) can write in and the test reads."""
    with tempfile.TemporaryDirectory(prefix="tollgate-test-") as folder:
        os.chmod(folder, 0o1777)
        yield Path(folder)


def test_a_snippet_cannot_change_what_later_snippets_run(executor, shared_dir):
    here = Path(executor_package.__file__).parent
    pth = Path(sysconfig.get_paths()["purelib"]) / f"tollgate-test-{uuid.uuid4().hex}.pth"
    dropped = here / f"tollgate-test-{uuid.uuid4().hex}.py"
    # Append nothing to the files others use; writing a line, to new files only, is enough to tell.
    attempts = {pth: f"{shared_dir}\n", dropped: "", here / "runner.py": "", Path(sys.prefix) / "pyvenv.cfg": ""}
    code = ("outcomes = {}\n"
            f"for path, line in {[(str(path), line) for path, line in attempts.items()]!r}:\n"
            "    try:\n"
            "        with open(path, 'a') as file:\n"
            "            file.write(line)\n"
            "        outcomes[path] = 'written'\n"
            "    except OSError as exc:\n"
            "        outcomes[path] = type(exc).__name__\n"
            "outcomes")
    try:
        outcomes = literal_eval(ran(executor, code)["result"])
        later = ran(executor, "import sys\n(sys.argv[0], sys.path)")
    finally:
        pth.unlink(missing_ok=True)
        dropped.unlink(missing_ok=True)
    argv0, path = literal_eval(later["result"])
    assert later["error"] is None and argv0 == "-c"  # the runner is no file a snippet could rewrite
    assert str(shared_dir) not in path and not [entry for entry in path if entry.endswith("-packages")]
    if os.geteuid() == 0:  # snippets run as nobody: none of it is theirs to write
        assert set(outcomes.values()) == {"PermissionError"}, outcomes


@pytest.mark.parametrize("reach", ["import ctypes", "import importlib\nctypes = importlib.import_module('ctypes')"])
def test_ctypes_is_refused_so_native_calls_reach_nothing(executor, reach):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        body = ran(executor, f"{reach}\nimport socket, struct\n"
                             "fd = ctypes.pythonapi.socket(socket.AF_INET, socket.SOCK_STREAM, 0)\n"
                             f"address = struct.pack('=H', socket.AF_INET) + struct.pack('!H', {port})"
                             " + socket.inet_aton('127.0.0.1') + bytes(8)\n"
                             "(fd, ctypes.pythonapi.connect(fd, address, len(address)))")
        assert body["error"] and "PermissionError" in body["error"] and "ctypes" in body["error"], body
        shell = ran(executor, f"{reach}\nctypes.pythonapi.system(b'echo reached')")
        assert "PermissionError" in shell["error"] and "reached" not in shell["stdout"]
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()


def can_unshare_unprivileged() -> bool:
    """Whether this kernel (and its seccomp, AppArmor) lets an unprivileged process have namespaces."""
    check = "import ctypes, sys\nsys.exit(ctypes.CDLL(None).unshare(0x10000000 | 0x40000000))"
    as_user = UNPRIVILEGED if os.geteuid() == 0 else {}
    return subprocess.run([snippet_python(), "-I", "-S", "-c", check], check=False, **as_user).returncode == 0


def test_an_unprivileged_executor_still_gives_each_snippet_a_network_of_its_own(executor):
    assert literal_eval(ran(executor, INTERFACES)["result"]) == ["lo"]  # however the executor runs
    if not can_unshare_unprivileged():
        pytest.skip("this kernel gives unprivileged processes no namespaces")
    runs = ("import asyncio, sys\n"
            f"sys.path.insert(0, {str(settings.BASE_DIR)!r})\n"
            "from executor.sandbox import Limits, run_snippet\n"
            f"limits = Limits(python={snippet_python()!r})\n"
            f"print(asyncio.run(run_snippet({INTERFACES!r}, seconds=5, limits=limits)).result)")
    as_user = UNPRIVILEGED if os.geteuid() == 0 else {}
    done = subprocess.run([snippet_python(), "-I", "-c", runs], capture_output=True, text=True, timeout=60,
                          check=False, **as_user)
    assert done.returncode == 0 and literal_eval(done.stdout) == ["lo"], done.stderr


@pytest.mark.parametrize(("number", "named"), [(40, "signal 40"), (signal.SIGUSR1, "SIGUSR1")])
def test_a_snippet_ended_by_any_signal_is_an_answer(executor, number, named):
    body = ran(executor, f"print('before', flush=True)\nimport signal\nsignal.raise_signal({number})")
    assert body["error"] == f"The snippet's process was killed by {named}."
    assert body["stdout"] == "before\n" and body["timed_out"] is False and body["duration_ms"] > 0


def send_and_keep(address: str, code: str, *, timeout: float) -> socket.socket:
    """A /run request whose caller has not read the answer yet: closing the socket hangs up."""
    body = json.dumps({"code": code, "timeout": timeout}).encode()
    caller = socket.create_connection(("127.0.0.1", int(address.rsplit(":", 1)[1])))
    caller.sendall(b"POST /run HTTP/1.1\r\nHost: executor\r\nContent-Type: application/json\r\n"
                   + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return caller


def test_a_caller_that_hangs_up_frees_its_slot_for_the_next(processes, shared_dir):
    port = free_port()
    serves = ("from executor.sandbox import Limits\nfrom executor.server import serve\n"
              f"serve(host='127.0.0.1', port={port}, key={KEY!r}, concurrency=1,"
              f" limits=Limits(max_timeout=60, python={snippet_python()!r}))")
    server = processes.start(["-c", serves])  # what `manage.py run_executor` serves, without Django
    address = f"http://127.0.0.1:{port}"
    processes.wait_healthy(server, address)
    running, queued = shared_dir / "running", shared_dir / "queued-ran"

    def is_at(runs: int, waits: int) -> bool:
        health = httpx.get(f"{address}/healthz", timeout=5).json()
        return health == {"status": "ok", "running": runs, "waiting": waits}

    with send_and_keep(address, f"import os\nopen({str(running)!r}, 'w').write(str(os.getpid()))\n"
                                "while True:\n    pass", timeout=60):
        wait_for(running.exists, timeout=30, what="the first snippet to run")
        with send_and_keep(address, f"open({str(queued)!r}, 'w')", timeout=60):
            wait_for(lambda: is_at(1, 1), what="the second snippet to wait its turn")
    wait_for(lambda: is_at(0, 0), what="the slot to be free")  # both callers hung up
    assert not Path(f"/proc/{running.read_text()}").exists()  # the first snippet's process is gone
    answer = httpx.post(f"{address}/run", json={"code": "6 * 7"}, headers={"Authorization": f"Bearer {KEY}"},
                        timeout=30)
    assert answer.json()["result"] == "42" and not queued.exists()  # the abandoned one never ran


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
