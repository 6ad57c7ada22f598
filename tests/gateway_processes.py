"""Gateway processes for the production and crash tests: `manage.py serve`, uvicorn nodes,
`run_background`, each on the test database (tests/test_responses_store.database_url), stopped at
the end. A pytest plugin (tests/conftest.py): the ``processes`` fixture."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import free_port, wait_for
from tests.test_responses_store import database_url

# The PostgreSQL sessions of the processes started here carry this name (libpq reads PGAPPNAME).
APPLICATION_NAME = "tollgate-test-process"


def process_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url(), "SECRET_KEY": settings.SECRET_KEY,
            "API_KEY_PEPPER": settings.API_KEY_PEPPER, "CREDENTIALS_KEY": settings.CREDENTIALS_KEY,
            "PGAPPNAME": APPLICATION_NAME, **overrides}


def end_their_sessions() -> None:
    """A killed process's PostgreSQL sessions outlive it until the server notices: one in the
    middle of a statement keeps its locks, and the test's flush then waits on them or deadlocks
    with them. End them before the flush."""
    if connection.vendor != "postgresql":
        return
    query = "FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s"

    def none_left() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_terminate_backend(pid) {query}", [APPLICATION_NAME])
            cursor.execute(f"SELECT count(*) {query}", [APPLICATION_NAME])
            return cursor.fetchone()[0] == 0
    wait_for(none_left, what="the stopped processes' database sessions to end")


class Processes:
    """Started processes, killed at the end if still running; ``output(p)`` is what p wrote."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.started: list[tuple[subprocess.Popen, object]] = []

    def start(self, args: list[str], **env: str) -> subprocess.Popen:
        log = open(self.tmp_path / f"process-{len(self.started)}.log", "w+b")  # closed in stop()
        process = subprocess.Popen([sys.executable, *args], cwd=settings.BASE_DIR, env=process_env(**env),
                                   stdout=log, stderr=subprocess.STDOUT)
        self.started.append((process, log))
        return process

    def output(self, process: subprocess.Popen) -> str:
        for started, log in self.started:
            if started is process:
                log.flush()
                return Path(log.name).read_text(errors="replace")
        raise KeyError(process)

    def node(self, **env: str) -> str:
        """A gateway node (uvicorn, one process), once it answers /healthz; its base URL."""
        return self.nodes(1, **env)[0]

    def nodes(self, count: int, **env: str) -> list[str]:
        """``count`` gateway nodes started together, once each answers /healthz; their base URLs."""
        started = []
        for _ in range(count):
            port = free_port()
            started.append((self.start(["-m", "uvicorn", "gateway.asgi:application", "--host", "127.0.0.1",
                                        "--port", str(port), "--log-level", "warning"], **env),
                            f"http://127.0.0.1:{port}"))
        for process, url in started:
            self.wait_healthy(process, url)
        return [url for _, url in started]

    def wait_healthy(self, process: subprocess.Popen, url: str) -> None:
        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the process exited: {self.output(process)[-3000:]}")
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False
        wait_for(up, timeout=60, what="the process to answer /healthz")

    def stop(self, *, on_database: bool) -> None:
        for process, log in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            log.close()
        if self.started and on_database:
            end_their_sessions()


@pytest.fixture
def processes(request, tmp_path):
    """Stopped before the test's database is flushed: a process still writing then would hold
    locks the flush waits on."""
    on_database = "transactional_db" in request.fixturenames
    if on_database:
        request.getfixturevalue("transactional_db")  # set up first, so flushed after the stop
    started = Processes(tmp_path)
    yield started
    started.stop(on_database=on_database)
