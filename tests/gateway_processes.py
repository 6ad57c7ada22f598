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

from tests.conftest import free_port, wait_for
from tests.test_responses_store import database_url


def process_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url(), "SECRET_KEY": settings.SECRET_KEY,
            "API_KEY_PEPPER": settings.API_KEY_PEPPER, "CREDENTIALS_KEY": settings.CREDENTIALS_KEY, **overrides}


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

    def stop(self) -> None:
        for process, log in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            log.close()


@pytest.fixture
def processes(tmp_path):
    started = Processes(tmp_path)
    yield started
    started.stop()
