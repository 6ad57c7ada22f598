from django.core.management.base import BaseCommand

from providers import breaker
from providers.health import chat_deployments, probe_all


class Command(BaseCommand):
    help = ("Probe every enabled chat deployment with a one-token request and print its health "
            "(latency, or the error it answered with) and any circuit breaker cooling down in this process.")

    def add_arguments(self, parser):
        parser.add_argument("--provider", help="Only this provider slug.")
        parser.add_argument("--model", action="append", default=[], help="Only this public model id (repeatable).")

    def handle(self, *args, provider, model, **options):
        deployments = chat_deployments(public_ids=model, provider=provider)
        if not deployments:
            self.stdout.write("No enabled chat deployment matches.")
            return
        results = probe_all(deployments)
        for result in results:
            self.stdout.write(result.line() if result.ok else self.style.ERROR(result.line()))
        for key, seconds in sorted(breaker.cooldowns().items()):
            self.stdout.write(f"  breaker open: {key} for {seconds:.0f}s more")
        failures = sum(1 for result in results if not result.ok)
        summary = f"{len(results) - failures} of {len(results)} deployments answered."
        self.stdout.write(self.style.SUCCESS(summary) if not failures else self.style.ERROR(summary))
