"""The processes every bench script starts, started one way: the fake OpenAI upstream, the bare
proxy and a gateway on a fresh install, each polled until it answers (bench/services.py runs and
stops them). bench/run.py, bench/cpu.py, bench/cache_hits.py and bench/profile.py use these.
"""

import json
import os
import re
import time
from pathlib import Path

from bench import load
from bench.provisioning import (
    PROJECT_DIR,
    PYTHON,
    TENANT,
    UPSTREAM_KEY,
    Install,
    create_install,
    manage,
)
from bench.services import Probe, Service, ServiceSet, free_port

VENV_BIN = Path(PYTHON).parent
CHAT_PATH = "/v1/chat/completions"
PRIMARY = "uvicorn+aiohttp"  # what `make run` serves with


def chat_probe(key: str) -> Probe:
    body = json.dumps({"model": load.MODEL, "messages": load.MESSAGES, "max_tokens": 8}).encode()
    return Probe("POST", CHAT_PATH, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, body)


def server_argv(server: str, port: int) -> list[str]:
    app = "gateway.asgi:application"
    if server == "granian":
        return [str(VENV_BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--loop", "uvloop", app]
    if server == "uvicorn":
        # The flags `make run` uses.
        return [str(VENV_BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio", "--no-access-log",
                "--no-proxy-headers", "--no-server-header", "--log-level", "warning"]
    if server == "daphne":
        # -v 0: no access log on stdout, like uvicorn's --no-access-log and granian's default.
        return [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "-v", "0", app]
    raise ValueError(f"unknown server {server!r}")


def start_upstream(services: ServiceSet, work_dir: Path, *, port: int | None = None,
                   module: str = "tests.fakes.openai_upstream", extra: tuple[str, ...] = ()) -> Service:
    port = port or free_port()
    service = services.start(Service(
        name=module.rsplit(".", 1)[-1], argv=[PYTHON, "-m", module, "--port", str(port), *extra],
        port=port, log_path=work_dir / "logs" / f"{module}.log", cwd=PROJECT_DIR))
    service.wait_ready(chat_probe(UPSTREAM_KEY))
    return service


def start_bare_proxy(services: ServiceSet, work_dir: Path, upstream: Service) -> Service:
    port = free_port()
    service = services.start(Service(
        name="bare proxy", port=port, log_path=work_dir / "logs" / "bare_proxy.log", cwd=PROJECT_DIR,
        argv=[PYTHON, "-m", "bench.bare_proxy", "--port", str(port), "--upstream", f"{upstream.base_url}/v1"]))
    service.wait_ready(chat_probe("unused"))
    return service


def start_gateway(services: ServiceSet, work_dir: Path, install: Install, *, variant: str = PRIMARY,
                  name: str = "gateway", **env: str) -> Service:
    """A gateway ``variant`` ("server+transport") serving ``install``, its full path answering."""
    server, transport = variant.split("+")
    port = free_port()
    log_name = re.sub(r"[^\w+.-]+", "-", name).strip("-")
    service = services.start(Service(
        name=name, argv=server_argv(server, port), port=port, cwd=PROJECT_DIR,
        log_path=work_dir / "logs" / f"{log_name}.log", env=install.env(HTTPX_TRANSPORT=transport, **env)))
    service.wait_ready(Probe("GET", "/v1/models", {"Authorization": f"Bearer {install.api_key}"}), timeout=60)
    service.wait_ready(chat_probe(install.api_key))  # the full path works before it is timed
    return service


def enable_cache(install: Install) -> None:
    """Turn the bench tenant's answer cache on, and wait until a running gateway has re-read its
    settings (KEY_CACHE_SECONDS)."""
    manage(install, "shell", "-c", "from gateway.cache_settings import update_cache_settings; from gateway.models "
           f"import Tenant; update_cache_settings(Tenant.objects.get(slug='{TENANT}'), enabled=True)")
    time.sleep(float(os.environ.get("KEY_CACHE_SECONDS", 5)) + 1)


def start_primary(services: ServiceSet, work_dir: Path) -> tuple[Service, Install, Service]:
    """The fake upstream, a fresh install using it and the PRIMARY gateway on it."""
    upstream = start_upstream(services, work_dir)
    print(f"setting up a Tollgate install in {work_dir}", flush=True)
    install = create_install(work_dir / "install", f"{upstream.base_url}/v1")
    return upstream, install, start_gateway(services, work_dir, install)
