import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from media.worker import run_worker
from usage.writer import writer


class Command(BaseCommand):
    help = ("Drive video jobs to their end: claim due jobs from the database, submit them to their "
            "provider, poll with backoff, store the videos and settle their usage once. Run one or "
            "more beside the server (`make run` starts one); SIGTERM or Ctrl-C stops it cleanly, "
            "handing its jobs back to the other workers.")

    def add_arguments(self, parser):
        parser.add_argument("--concurrency", type=int, default=settings.VIDEO_WORKER_CONCURRENCY,
                            help="Jobs advanced at once (default VIDEO_WORKER_CONCURRENCY).")

    def handle(self, *args, concurrency: int, **options):
        self.stdout.write("video worker running (Ctrl-C to stop)")
        asyncio.run(self.serve(concurrency))
        self.stdout.write("video worker stopped")

    async def serve(self, concurrency: int) -> None:
        writer.start()  # the ledger writer's sweep runs here too, traffic or not
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(stop, concurrency=concurrency)
