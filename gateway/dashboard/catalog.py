"""The models page: what the tenant's plan allows, with prices, capabilities and features."""

from dataclasses import dataclass
from decimal import Decimal

from django.shortcuts import render

from billing.entitlements import models_on_plan
from gateway.dashboard.tenancy import tenant_page
from gateway.models import Membership
from providers.catalog_snapshot import ModelInfo
from providers.models import Capability


def usd(amount: Decimal) -> str:
    """$0.15, $10, $0.000125: exact, without trailing zeros or an exponent."""
    return f"${amount.normalize():f}" if amount else "$0"


@dataclass(frozen=True, slots=True)
class UnitPrice:
    label: str
    amount: Decimal

    @property
    def display(self) -> str:
        return f"{usd(self.amount)} {self.label}"


def unit_prices(model: ModelInfo) -> list[UnitPrice]:
    """Media prices that are set, per unit, most specific last."""
    media = model.prices.media
    prices = []
    if media.per_image:
        prices.append(UnitPrice("per image", media.per_image))
    prices += [UnitPrice(f"per image, {detail}", amount) for detail, amount in media.image]
    if media.per_video_second:
        prices.append(UnitPrice("per second of video", media.per_video_second))
    prices += [UnitPrice(f"per second of video, {detail}", amount) for detail, amount in media.video_second]
    if media.per_million_characters:
        prices.append(UnitPrice("per million characters", media.per_million_characters))
    if media.per_audio_minute:
        prices.append(UnitPrice("per minute of audio", media.per_audio_minute))
    return prices


def has_token_prices(model: ModelInfo) -> bool:
    prices = model.prices
    return bool(prices.input or prices.output or prices.cached_input) or model.capability in (
        Capability.CHAT, Capability.EMBEDDING)


@tenant_page("models")
def models_page(request, membership: Membership):
    plan = membership.tenant.subscription.plan
    capability = request.GET.get("capability", "")
    models = models_on_plan(plan)
    capabilities = sorted({m.capability for m in models})
    rows = [
        {"model": m, "unit_prices": unit_prices(m), "token_prices": has_token_prices(m),
         "input": usd(m.prices.input), "output": usd(m.prices.output), "cached_input": usd(m.prices.cached_input),
         "features": sorted(m.features) if m.capability == Capability.CHAT else None}
        for m in models if not capability or m.capability == capability
    ]
    return render(request, "dashboard/models.html", {
        "plan": plan, "rows": rows, "capabilities": capabilities, "capability": capability,
        "capability_labels": dict(Capability.choices),
    })
