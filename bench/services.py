"""The processes under test: start them, wait until they answer, read their memory, stop them.

Each service runs in its own session (process group), so stopping it also stops the workers a
server forks (granian's supervisor keeps its worker in a child process). Their output goes to a
log file that the report scans for errors, because a server that logs a traceback and still
answers 200 would otherwise look healthy.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# What in a server's log means something went wrong, counted per service in the report.
LOG_ALARMS = ("database is locked", "Traceback", "ERROR", "Exception")


class ServiceFailed(RuntimeError):
    """A service exited or never became ready; the message carries the tail of its log."""


def free_port() -> int:
    # The port is free when we look; a small race with other programs is acceptable for a bench.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True, slots=True)
class Probe:
    """One request that must answer 200 before the service counts as ready."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass
class Service:
    name: str
    argv: list[str]
    port: int
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Service":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def wait_ready(self, probe: Probe, *, timeout: float = 30.0) -> float:
        """Poll ``probe`` until it answers 200; returns the seconds it took."""
        started = time.monotonic()
        last_problem = "no answer yet"
        while time.monotonic() - started < timeout:
            if self.process is None or self.process.poll() is not None:
                raise ServiceFailed(f"{self.name} exited before it was ready:\n{self.log_tail()}")
            request = urllib.request.Request(self.base_url + probe.path, data=probe.body, method=probe.method,
                                             headers=probe.headers)
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - started
                    last_problem = f"HTTP {response.status}"
            except urllib.error.HTTPError as error:
                last_problem = f"HTTP {error.code}: {error.read()[:300]!r}"
            except OSError as error:
                last_problem = str(error)
            time.sleep(0.1)
        raise ServiceFailed(f"{self.name} not ready after {timeout:.0f}s ({last_problem}):\n{self.log_tail()}")

    def pids(self) -> list[int]:
        """The service's process and all its descendants (a supervisor and its workers)."""
        if self.process is None:
            return []
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                # The command name in field 2 may hold spaces; the ppid follows its ")".
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def rss_kib(self) -> dict[int, int]:
        """VmRSS of each of the service's processes, in KiB (pid -> KiB)."""
        sizes = {}
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes[pid] = int(line.split()[1])
            except OSError:
                continue  # exited between listing and reading
        return sizes

    def thread_count(self) -> int:
        """OS threads across the service's processes (Django runs sync code in per-request threads)."""
        total = 0
        for pid in self.pids():
            try:
                total += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                continue
        return total

    def log_alarms(self) -> dict[str, int]:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return {}
        return {alarm: text.count(alarm) for alarm in LOG_ALARMS if alarm in text}

    def stop(self, *, grace: float = 5.0) -> None:
        """SIGTERM the whole process group, SIGKILL what is left after ``grace`` seconds."""
        if self.process is None or self.process.returncode is not None:
            return
        pgid = self.process.pid  # start_new_session made it the group leader
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
                # The leader is gone; its workers may linger a moment longer.
                os.killpg(pgid, signal.SIGKILL)
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                pass
            break


class ServiceSet:
    """Every service started in one run; stop_all() runs on success, error and Ctrl-C alike."""

    def __init__(self) -> None:
        self.services: list[Service] = []

    def start(self, service: Service) -> Service:
        self.services.append(service)
        return service.start()

    def stop_all(self) -> None:
        for service in reversed(self.services):
            try:
                service.stop()
            except Exception as error:  # keep stopping the others
                print(f"could not stop {service.name}: {error}")

    def __enter__(self) -> "ServiceSet":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_all()
