"""The child side of one snippet run: executor/sandbox.py starts ``python -I -S -u -c <this file's
source> FD`` with the base interpreter, so no file a snippet could write (this one, a venv's
site-packages or pyvenv.cfg) is read when the next run starts.

It reads {"code", "limits", "user"} from stdin and then, before the snippet runs:
- lowers its resource limits, soft and hard alike (CPU seconds, address space, file size, open
  files, no core files), so the snippet cannot raise them again;
- moves into a network namespace of its own, no interface but a loopback that is down:
  unshare(CLONE_NEWNET) where it may (root, CAP_SYS_ADMIN), else unshare(CLONE_NEWUSER |
  CLONE_NEWNET) where the kernel lets unprivileged processes have user namespaces;
- when started as root, becomes "user" ([uid, gid], no supplementary groups) in between;
- forgets ctypes, which it needed for unshare, and points stdin at /dev/null;
- installs an audit hook that refuses sockets (but socketpair's), name lookups, new processes,
  signals to other processes, rlimit changes, importing ctypes, any ctypes operation, and walking
  the garbage collector's objects (where a forgotten module would still be found).
Then it runs the snippet as a REPL cell (the last expression's repr is the result) and writes
{"result", "error", "network_isolated"} as JSON to FD. stdout and stderr are the snippet's own,
read and capped by the parent.

The audit hook guards against accidents, not attacks: code that reaches native code (a C
extension, a ctypes type found by other means) can go around it; the user and the network
namespace are what hold then. Stdlib only; everything the runner needs is imported before the
hook is installed.
"""

import ast
import builtins
import gc
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
CLONE_NEWUSER = 0x10000000
REFUSED = {
    "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen",
    "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "resource.setrlimit", "resource.prlimit",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents",
}
SOCKET_ALLOWED = {"socket.gethostname"}


def limit_resources(limits: dict) -> None:
    for name, value in (("RLIMIT_AS", limits["memory_bytes"]), ("RLIMIT_FSIZE", limits["file_bytes"]),
                        ("RLIMIT_NOFILE", limits["open_files"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))
    # SIGXCPU at the soft limit ends the process; SIGKILL a second later if the snippet ignores it.
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file past the cap fails with EFBIG, not a kill


def enter_sandbox(request: dict) -> bool:
    """Limits, user and network for the snippet; whether its network namespace is its own."""
    limit_resources(request["limits"])
    isolated = unshare(CLONE_NEWNET)  # root, or CAP_SYS_ADMIN
    if request.get("user"):
        become(*request["user"])
    # Unprivileged (or root that just gave up its user): where the kernel allows user namespaces.
    isolated = isolated or unshare(CLONE_NEWUSER | CLONE_NEWNET)
    forget_ctypes()
    return isolated


def unshare(flags: int) -> bool:
    import ctypes  # only here: forget_ctypes drops it before the snippet runs

    try:
        return ctypes.CDLL(None, use_errno=True).unshare(flags) == 0
    except (OSError, AttributeError):
        return False


def become(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def is_ctypes(module: str) -> bool:
    return module in ("ctypes", "_ctypes") or module.startswith("ctypes.")


def forget_ctypes() -> None:
    """ctypes.pythonapi and CDLL(None) call any C function, the hook unasked: no snippet may hold them."""
    for module in [module for module in sys.modules if is_ctypes(module)]:
        del sys.modules[module]
    gc.collect()  # the module's own objects (pythonapi, memmove) go with it


def refuse(event: str, args: tuple) -> None:
    if event == "import" and is_ctypes(args[0]):
        raise PermissionError(f"importing {args[0]} is refused: snippets run without native libraries.")
    if event in REFUSED or event.startswith("ctypes."):
        raise PermissionError(f"{event} is refused: snippets run without subprocesses, signals or native code.")
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
    isolated = enter_sandbox(request)
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
