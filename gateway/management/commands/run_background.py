import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from gateway.background import run_background
from usage.writer import writer

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = ("Run the background work: the video worker, the ledger writer's reservation sweep and every "
            "periodic job (grace periods, overage reports, response retention, provider checks, "
            "spend alerts), each once per period across all copies. Run one or more beside `manage.py serve`; SIGTERM or "
            "Ctrl-C stops it cleanly, handing its video jobs back.")

    def add_arguments(self, parser):
        parser.add_argument("--concurrency", type=int, default=settings.VIDEO_WORKER_CONCURRENCY,
                            help="Video jobs advanced at once (default VIDEO_WORKER_CONCURRENCY).")

    def handle(self, *args, concurrency: int, **options):
        asyncio.run(self.serve(concurrency))
        writer.stop()  # commit what the last steps queued
        log.info("background work stopped")

    async def serve(self, concurrency: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_background(stop, concurrency=concurrency)
