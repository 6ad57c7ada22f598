import logging
import os
import shutil
import tempfile
from pathlib import Path

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = ("Serve the gateway in production: WORKERS uvicorn processes (default: one per core) on HOST:PORT "
            "(default 127.0.0.1:8000), WebSockets on, static files from the app. Runs no migration: run "
            "`make migrate` first (the release step). SIGTERM drains: each worker stops accepting, lets "
            "requests and streams in flight finish for up to SHUTDOWN_GRACE_SECONDS, settles them, "
            "flushes the ledger writer and exits.")

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SERVE_HOST, help="Address to bind (HOST).")
        parser.add_argument("--port", type=int, default=settings.SERVE_PORT, help="Port (PORT).")
        parser.add_argument("--workers", type=int, default=settings.WORKERS,
                            help="Worker processes (WORKERS; 0: one per core).")

    def handle(self, *args, host: str, port: int, workers: int, **options):
        workers = workers or os.cpu_count() or 1
        # One worker runs in this process, whose metrics are in memory already; several write files.
        metrics_dir, made = self.metrics_directory() if workers > 1 else (None, False)
        log.info("serving http://%s:%s with %d worker(s)", host, port, workers)
        try:
            uvicorn.run(
                "gateway.asgi:application", host=host, port=port, workers=workers,
                loop="uvloop", http="httptools", ws="websockets-sansio", lifespan="on",
                timeout_graceful_shutdown=settings.SHUTDOWN_GRACE_SECONDS,
                # The app reads X-Forwarded-* itself, as far as TRUSTED_PROXIES vouch (gateway/proxies.py).
                proxy_headers=False, server_header=False, access_log=False,
                log_config=None,  # Django's LOGGING (LOG_FORMAT) formats uvicorn's lines too
            )
        finally:
            if made:
                shutil.rmtree(metrics_dir, ignore_errors=True)

    def metrics_directory(self) -> tuple[Path | None, bool]:
        """PROMETHEUS_MULTIPROC_DIR for the workers: each writes its metrics there and /metrics adds
        them up. A fresh directory per start (the operator's, emptied, if set): counters from an
        earlier run must not be added again."""
        given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if given:
            path = Path(given)
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            return path, False
        path = Path(tempfile.mkdtemp(prefix="tollgate-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)  # the workers inherit it
        return path, True
