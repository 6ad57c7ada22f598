"""The child side of one snippet run: executor/sandbox.py starts ``python -I -u runner.py FD``.

It reads {"code", "limits"} from stdin and then, before the snippet runs:
- lowers its resource limits, soft and hard alike (CPU seconds, address space, file size, open
  files, no core files), so the snippet cannot raise them again;
- moves into a network namespace of its own when the kernel lets it (root or CAP_SYS_ADMIN): no
  interface but a loopback that is down;
- points stdin at /dev/null and installs an audit hook that refuses sockets (but socketpair's),
  name lookups, new processes, signals to other processes, rlimit changes and loading libraries
  with ctypes.
Then it runs the snippet as a REPL cell (the last expression's repr is the result) and writes
{"result", "error", "network_isolated"} as JSON to FD. stdout and stderr are the snippet's own,
read and capped by the parent.

The audit hook guards against accidents, not attacks: code that reaches native code (an already
loaded library through ctypes, a C extension) can go around it. Stdlib only; everything the
runner needs is imported before the hook is installed.
"""

import ast
import builtins
import ctypes
import json
import linecache
import os
import resource
import signal
import socket
import sys
import traceback

CELL = "<cell>"
REPORT_CHARS = 10_000  # each of result and error: the report must fit the pipe
CLONE_NEWNET = 0x40000000
REFUSED = {
    "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen",
    "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "resource.setrlimit", "resource.prlimit",
    "ctypes.dlopen",
}
SOCKET_ALLOWED = {"socket.gethostname"}


def limit_resources(limits: dict) -> None:
    for name, value in (("RLIMIT_AS", limits["memory_bytes"]), ("RLIMIT_FSIZE", limits["file_bytes"]),
                        ("RLIMIT_NOFILE", limits["open_files"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))
    # SIGXCPU at the soft limit ends the process; SIGKILL a second later if the snippet ignores it.
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file past the cap fails with EFBIG, not a kill


def leave_network() -> bool:
    """Whether this process now has a network namespace of its own (else only the hook applies)."""
    try:
        return ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) == 0
    except (OSError, AttributeError):
        return False


def refuse(event: str, args: tuple) -> None:
    if event in REFUSED:
        raise PermissionError(f"{event} is refused: snippets run without subprocesses, signals or native libraries.")
    if event.startswith("socket.") and event not in SOCKET_ALLOWED:
        if event == "socket.__new__" and args[1] == socket.AF_UNIX:
            return  # socketpair's, which asyncio's event loop needs; connect and bind stay refused
        raise PermissionError(f"{event} is refused: snippets run without network access.")


def clip(text: str) -> str:
    return text if len(text) <= REPORT_CHARS else text[:REPORT_CHARS] + f"... [{len(text) - REPORT_CHARS} more characters]"


def describe(exc: BaseException) -> str:
    """The traceback of an exception the snippet raised, without the runner's own frames."""
    described = traceback.TracebackException.from_exception(exc)
    chain, seen = [described], set()
    while chain:
        current = chain.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        frames = list(current.stack)
        first = next((i for i, frame in enumerate(frames) if frame.filename == CELL), len(frames))
        current.stack = traceback.StackSummary.from_list(frames[first:])
        chain.extend(other for other in (current.__cause__, current.__context__) if other is not None)
    return "".join(described.format()).rstrip()


def run_cell(code: str) -> tuple[str | None, str | None]:
    """(repr of the last expression or None, the error's traceback or None), as a REPL cell."""
    linecache.cache[CELL] = (len(code), None, code.splitlines(True), CELL)
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        tree = ast.parse(code, CELL)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, CELL, "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), CELL, "eval"), namespace)
            if value is not None:
                return clip(repr(value)), None
        return None, None
    except SystemExit as exc:
        return None, None if exc.code in (None, 0) else f"SystemExit: {exc.code}"
    except BaseException as exc:  # whatever the snippet raised is its answer
        return None, clip(describe(exc))


def main() -> None:
    report_fd = int(sys.argv[1])
    request = json.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    limit_resources(request["limits"])
    isolated = leave_network()
    sys.addaudithook(refuse)
    result, error = run_cell(request["code"])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    report = json.dumps({"result": result, "error": error, "network_isolated": isolated}).encode()
    try:
        with open(report_fd, "wb", closefd=True) as pipe:
            pipe.write(report)
    except OSError:
        pass  # the snippet closed it; the parent reports a missing answer


if __name__ == "__main__":
    main()
