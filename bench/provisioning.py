"""A throwaway Tollgate install for the bench: var dir, database, tenant, API key.

It is set up once through the real management commands (what an operator runs), then copied
for each gateway variant, so every server starts from the same small database rather than one
already grown by the previous variant's usage records.
"""

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
UPSTREAM_KEY = "sk-fake-upstream"  # what tests/fakes/openai_upstream.py accepts
TENANT = "bench"
# The enterprise plan allows 6,000 requests a minute; the bench sends more than that.
LIFT_RATE_LIMIT = ("from billing.models import Plan; "
                   "Plan.objects.filter(slug='enterprise').update(requests_per_minute=10000000)")
# Settings that would point the gateway at shared infrastructure instead of the temp dir.
INHERITED_SETTINGS_DROPPED = ("DATABASE_URL", "REDIS_URL", "HTTPX_TRANSPORT", "UPSTREAM_MAX_CONNECTIONS")


@dataclass(frozen=True, slots=True)
class Install:
    var_dir: Path
    api_key: str
    upstream_base_url: str

    def env(self, **extra: str) -> dict[str, str]:
        """The environment every gateway process and command of this install runs with."""
        env = {name: value for name, value in os.environ.items() if name not in INHERITED_SETTINGS_DROPPED}
        env.update(TOLLGATE_VAR_DIR=str(self.var_dir), OPENAI_API_KEY=UPSTREAM_KEY,
                   OPENAI_BASE_URL=self.upstream_base_url, DEBUG="0", LOG_LEVEL="WARNING",
                   DJANGO_SETTINGS_MODULE="gateway.settings", **extra)
        return env

    def copy_to(self, var_dir: Path) -> "Install":
        shutil.copytree(self.var_dir, var_dir)
        return Install(var_dir, self.api_key, self.upstream_base_url)

    def count_usage_records(self) -> int:
        """Rows in usage_usagerecord (every admitted request leaves exactly one)."""
        import sqlite3

        # Read-write mode: a read-only connection cannot open a WAL database whose -shm file the
        # gateway deleted on its last close. Opened and closed at once to disturb it as little as possible.
        db = sqlite3.connect(self.var_dir / "tollgate.sqlite3", timeout=30)
        try:
            return db.execute("SELECT COUNT(*) FROM usage_usagerecord").fetchone()[0]
        finally:
            db.close()


def manage(install: Install, *args: str) -> str:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=PROJECT_DIR, env=install.env(),
                            capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def create_install(var_dir: Path, upstream_base_url: str) -> Install:
    var_dir.mkdir(parents=True, exist_ok=True)
    install = Install(var_dir, api_key="", upstream_base_url=upstream_base_url)
    manage(install, "migrate", "-v0")
    manage(install, "bootstrap")  # reads OPENAI_API_KEY / OPENAI_BASE_URL: enables the fake
    manage(install, "shell", "-c", LIFT_RATE_LIMIT)
    manage(install, "create_tenant", TENANT, "--plan", "enterprise", "--owner-email", "bench@example.com")
    output = manage(install, "create_api_key", TENANT, "--name", "bench")
    api_key = output.strip().splitlines()[-1].strip()  # the raw key is alone on the last line
    if not api_key.startswith("tg-"):
        raise RuntimeError(f"create_api_key printed no key on its last line:\n{output}")
    return Install(var_dir, api_key, upstream_base_url)
