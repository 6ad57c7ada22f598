"""One snippet, one fresh process: the parent side of a run (executor/runner.py is the child's).

    run_snippet(code, *, seconds, limits) -> Outcome

Each snippet gets ``python -I -S -u -c <runner.py's source>`` of the base interpreter, never a
venv's (isolated mode: no PYTHON* variables, no user site, no current directory on sys.path; -S:
no site-packages, no .pth files; -c: the runner as read when the executor started, no file a
snippet could rewrite). It runs in a new session, in a temporary working directory removed
afterwards, with an environment of PATH, HOME, TMPDIR and locale only (no proxies, no secrets of
the executor's). An executor running as root hands the snippet to ``limits.user`` (nobody unless
EXECUTOR_USER says otherwise), who owns that directory. The runner lowers its own limits before
the snippet runs (its docstring). Here: a wall-clock deadline (``seconds`` plus STARTUP_SECONDS)
kills the whole process group, as does the caller giving up (cancelling); stdout and stderr are
read as they come and kept up to ``limits.output_bytes`` each.
"""

import asyncio
import json
import math
import os
import pwd
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

RUNNER_SOURCE = (Path(__file__).resolve().parent / "runner.py").read_text()
STARTUP_SECONDS = 0.5  # the interpreter's own start, before the snippet's time begins
REPORT_BYTES = 64 * 1024
CHUNK = 64 * 1024
MIB = 1024 * 1024


def base_python() -> str:
    """EXECUTOR_PYTHON, else the interpreter this venv (if any) was made from: a venv's
    site-packages and pyvenv.cfg belong to whoever installed it, and its bin/python reads them."""
    return os.environ.get("EXECUTOR_PYTHON") or os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def snippet_user() -> str:
    return os.environ.get("EXECUTOR_USER") or "nobody"


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int = 512 * MIB  # address space, the interpreter's own included
    file_bytes: int = 16 * MIB  # the largest file a snippet may write
    open_files: int = 64
    output_bytes: int = 64 * 1024  # kept of stdout, and of stderr
    max_timeout: float = 60.0  # seconds; a longer timeout asked for is cut to this
    python: str = field(default_factory=base_python)  # must be readable, not writable, by ``user``
    user: str = field(default_factory=snippet_user)  # whom snippets run as when the executor is root


@dataclass(frozen=True, slots=True)
class Outcome:
    stdout: str
    stderr: str
    result: str | None  # repr of the last expression, if it was one and not None
    error: str | None  # the traceback, a timeout, or how the process ended
    duration_ms: int
    timed_out: bool
    network_isolated: bool = False  # the run had a network namespace of its own

    def as_json(self) -> dict:
        return {"stdout": self.stdout, "stderr": self.stderr, "result": self.result, "error": self.error,
                "duration_ms": self.duration_ms, "timed_out": self.timed_out}


async def run_snippet(code: str, *, seconds: float, limits: Limits) -> Outcome:
    """Runs ``code`` in a fresh, limited subprocess for at most ``seconds`` (cut to
    ``limits.max_timeout``); what it printed, returned and raised."""
    seconds = min(seconds, limits.max_timeout)
    user = account_of(limits.user) if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory(prefix="tollgate-run-") as workdir:
        if user is not None:
            os.chown(workdir, *user)
        process, report_pipe = await start_runner(limits.python, workdir)
        readers = asyncio.gather(read_capped(process.stdout, limits.output_bytes),
                                 read_capped(process.stderr, limits.output_bytes), read_report(report_pipe))
        try:
            started = time.monotonic()
            await send_request(process, {"code": code, "limits": limits_for(seconds, limits), "user": user})
            timed_out = await wait_or_kill(process, seconds + STARTUP_SECONDS)
            duration_ms = int((time.monotonic() - started) * 1000)
            (out, out_cut), (err, err_cut), report = await finish_reading(process, readers)
        finally:
            readers.cancel()  # nothing to cancel once read; else the caller gave up
            if process.returncode is None:  # ... and the snippet goes too, before its directory
                kill_group(process)
                await asyncio.shield(process.wait())
    return Outcome(stdout=decoded(out, out_cut), stderr=decoded(err, err_cut), result=report.get("result"),
                   error=error_of(process.returncode, report, timed_out=timed_out, seconds=seconds),
                   duration_ms=duration_ms, timed_out=timed_out or process.returncode == -signal.SIGXCPU,
                   network_isolated=bool(report.get("network_isolated")))


async def start_runner(python: str, workdir: str) -> tuple[asyncio.subprocess.Process, BinaryIO]:
    """The runner's process, and the pipe its report comes back on."""
    report_read, report_write = os.pipe()
    report_pipe = os.fdopen(report_read, "rb", 0)
    try:
        process = await asyncio.create_subprocess_exec(
            python, "-I", "-S", "-u", "-c", RUNNER_SOURCE, str(report_write),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=workdir, env=clean_env(workdir), pass_fds=(report_write,), start_new_session=True)
    except BaseException:
        report_pipe.close()
        raise
    finally:
        os.close(report_write)
    return process, report_pipe


def account_of(user: str) -> tuple[int, int]:
    """(uid, gid) of the user snippets run as; KeyError if there is none."""
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def limits_for(seconds: float, limits: Limits) -> dict:
    return {"cpu_seconds": max(1, math.ceil(seconds)), "memory_bytes": limits.memory_bytes,
            "file_bytes": limits.file_bytes, "open_files": limits.open_files}


def clean_env(workdir: str) -> dict[str, str]:
    return {"PATH": os.defpath, "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


async def send_request(process: asyncio.subprocess.Process, request: dict) -> None:
    try:
        process.stdin.write(json.dumps(request).encode())
        await process.stdin.drain()
        process.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the interpreter died at start; its exit status says how


async def wait_or_kill(process: asyncio.subprocess.Process, seconds: float) -> bool:
    """Waits for the process; past ``seconds``, kills its whole group. Whether it was killed."""
    try:
        async with asyncio.timeout(seconds):
            await process.wait()
        return False
    except TimeoutError:
        kill_group(process)
        await process.wait()
        return True


def kill_group(process: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # start_new_session: the group is the process's own
    except ProcessLookupError:
        pass


async def finish_reading(process: asyncio.subprocess.Process, readers: asyncio.Future) -> tuple:
    """The readers' results once the pipes close; a descendant holding them open is killed."""
    try:
        async with asyncio.timeout(1.0):
            return await asyncio.shield(readers)
    except TimeoutError:
        kill_group(process)
        return await readers


async def read_capped(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    """Everything up to ``cap`` bytes, and whether more came; the rest is read and dropped, so
    the snippet never blocks on a full pipe."""
    kept, cut = bytearray(), False
    while chunk := await stream.read(CHUNK):
        room = max(cap - len(kept), 0)
        kept += chunk[:room]
        cut = cut or len(chunk) > room
    return bytes(kept), cut


async def read_report(pipe: BinaryIO) -> dict:
    """The runner's report; the pipe is closed after, or on cancellation."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        body, cut = await read_capped(reader, REPORT_BYTES)
    finally:
        transport.close()
    try:
        report = json.loads(body) if body and not cut else {}
    except ValueError:
        report = {}
    return report if isinstance(report, dict) else {}


def decoded(content: bytes, cut: bool) -> str:
    text = content.decode("utf-8", "replace")
    return f"{text}\n[output cut at {len(content)} bytes]" if cut else text


def error_of(returncode: int | None, report: dict, *, timed_out: bool, seconds: float) -> str | None:
    if timed_out or returncode == -signal.SIGXCPU:
        return f"TimeoutError: the snippet ran past its time limit of {seconds:g}s and was stopped."
    if returncode is not None and returncode < 0:
        name = signal_name(-returncode)
        hint = " (its CPU time limit, or the machine ran out of memory)" if returncode == -signal.SIGKILL else ""
        return f"The snippet's process was killed by {name}{hint}."
    if "error" not in report and returncode:
        return f"The snippet's process exited with status {returncode} before it finished."
    error = report.get("error")
    return error if isinstance(error, str) else None


def signal_name(number: int) -> str:
    """SIGKILL, SIGSEGV, ...; a real-time signal (34 to 64 bar the ends) has no name of its own."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
