import asyncio
import time

from django.core.management.base import BaseCommand

from providers import breaker, router
from providers.errors import ProviderError
from providers.http import close_client
from providers.types import ChatRequest, Message


class Command(BaseCommand):
    help = ("Probe every enabled chat deployment with a one-token request and print its health "
            "(latency, or the error it answered with) and any circuit breaker cooling down in this process.")

    def add_arguments(self, parser):
        parser.add_argument("--provider", help="Only this provider slug.")
        parser.add_argument("--model", action="append", default=[], help="Only this public model id (repeatable).")

    def handle(self, *args, provider, model, **options):
        catalog = router.load_catalog()
        chosen = [
            deployment for public_id in sorted(catalog.deployments)
            if catalog.models[public_id].capability == "chat" and (not model or public_id in model)
            for deployment in catalog.deployments_for(public_id)
            if not provider or deployment.model.provider == provider
        ]
        if not chosen:
            self.stdout.write("No enabled chat deployment matches.")
            return
        failures = asyncio.run(self.probe_all(chosen))
        for key, seconds in sorted(breaker.cooldowns().items()):
            self.stdout.write(f"  breaker open: {key} for {seconds:.0f}s more")
        summary = f"{len(chosen) - failures} of {len(chosen)} deployments answered."
        self.stdout.write(self.style.SUCCESS(summary) if not failures else self.style.ERROR(summary))

    async def probe_all(self, deployments) -> int:
        try:
            results = await asyncio.gather(*(self.probe(deployment) for deployment in deployments))
        finally:
            await close_client()
        for line, ok in results:
            self.stdout.write(line if ok else self.style.ERROR(line))
        return sum(1 for _, ok in results if not ok)

    async def probe(self, deployment) -> tuple[str, bool]:
        model = deployment.model
        request = ChatRequest(model=model.public_id, messages=[Message(role="user", content="ping")],
                              max_output_tokens=1)
        started = time.monotonic()
        try:
            await router.complete(request, deployment)
        except ProviderError as error:
            return f"  down  {model.public_id} ({model.provider}/{model.upstream_model}): {error.message}", False
        elapsed = (time.monotonic() - started) * 1000
        return f"  ok    {model.public_id} ({model.provider}/{model.upstream_model}) in {elapsed:.0f} ms", True
