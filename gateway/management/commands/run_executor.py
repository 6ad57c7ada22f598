from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from executor.sandbox import MIB, Limits
from executor.server import serve


class Command(BaseCommand):
    help = ("Serve the reference Python executor for the code_interpreter tool (executor/): each snippet in a "
            "fresh subprocess with CPU, memory, file and output limits and no network. For trusted environments "
            "only. Callers authenticate with PYTHON_EXECUTOR_KEY; point the gateway's PYTHON_EXECUTOR_URL here.")

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--memory-mb", type=int, default=512, help="Address space per snippet (default 512).")
        parser.add_argument("--max-timeout", type=float, default=60.0,
                            help="Seconds; a longer timeout asked for is cut to this (default 60).")
        parser.add_argument("--output-kb", type=int, default=64, help="Kept of stdout and of stderr (default 64).")
        parser.add_argument("--concurrency", type=int, default=4, help="Snippets run at once (default 4).")

    def handle(self, *args, host, port, memory_mb, max_timeout, output_kb, concurrency, **options):
        if not settings.PYTHON_EXECUTOR_KEY:
            raise CommandError("Set PYTHON_EXECUTOR_KEY: the executor runs whatever code it is sent, so it "
                               "answers only callers with that key.")
        limits = Limits(memory_bytes=memory_mb * MIB, output_bytes=output_kb * 1024, max_timeout=max_timeout)
        serve(host=host, port=port, key=settings.PYTHON_EXECUTOR_KEY, limits=limits, concurrency=concurrency)
