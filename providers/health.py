"""Probing deployments: one tiny request each, for `manage.py check_providers` and the admin."""

import asyncio
import time
from dataclasses import dataclass

from providers import router
from providers.catalog_snapshot import Deployment, load_catalog
from providers.errors import ProviderError
from providers.http import close_client
from providers.types import ChatRequest, Message


@dataclass(frozen=True, slots=True)
class ProbeResult:
    public_id: str
    provider: str
    upstream_model: str
    ok: bool
    detail: str  # latency, or the error the deployment answered with

    def line(self) -> str:
        state = "ok  " if self.ok else "down"
        return f"  {state}  {self.public_id} ({self.provider}/{self.upstream_model}): {self.detail}"


async def probe(deployment: Deployment) -> ProbeResult:
    model = deployment.model
    request = ChatRequest(model=model.public_id, messages=[Message(role="user", content="ping")],
                          max_output_tokens=1)
    started = time.monotonic()
    try:
        await router.complete(request, deployment)
    except ProviderError as error:
        return ProbeResult(model.public_id, model.provider, model.upstream_model, False, error.message)
    elapsed = (time.monotonic() - started) * 1000
    return ProbeResult(model.public_id, model.provider, model.upstream_model, True, f"answered in {elapsed:.0f} ms")


def chat_deployments(*, public_ids: list[str] | None = None, provider: str | None = None) -> list[Deployment]:
    catalog = load_catalog()
    return [
        deployment for public_id in sorted(catalog.deployments)
        if catalog.models[public_id].capability == "chat" and (not public_ids or public_id in public_ids)
        for deployment in catalog.deployments_for(public_id)
        if not provider or deployment.model.provider == provider
    ]


def probe_all(deployments: list[Deployment]) -> list[ProbeResult]:
    """Probe them concurrently (sync: for a command or an admin action, not the event loop)."""

    async def run() -> list[ProbeResult]:
        try:
            return list(await asyncio.gather(*(probe(deployment) for deployment in deployments)))
        finally:
            await close_client()

    return asyncio.run(run())
