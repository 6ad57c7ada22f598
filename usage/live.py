"""Settled usage, pushed to the tenant's open dashboards through the channel layer."""

import logging

from channels.layers import InMemoryChannelLayer, get_channel_layer

from usage.models import UsageRecord

log = logging.getLogger(__name__)


def group_name(tenant_id: int) -> str:
    return f"usage.{tenant_id}"


def describe(record: UsageRecord) -> dict:
    return {
        "request_id": record.request_id,
        "created_at": record.created_at.isoformat(),
        "model": record.model,
        "provider": record.provider,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cost": str(record.cost),
        "outcome": record.outcome,
        "ending": record.ending,
        "latency_ms": record.latency_ms,
    }


async def publish_settled(record: UsageRecord) -> None:
    layer = get_channel_layer()
    group = group_name(record.tenant_id)
    if layer is None or (isinstance(layer, InMemoryChannelLayer) and group not in layer.groups):
        # The in-memory layer reaches only this process: with no member of the group here,
        # there is no one to tell (and its group_send scans every channel for expiry first).
        return
    try:
        await layer.group_send(group, {"type": "usage.settled", "record": describe(record)})
    except Exception:  # a dashboard that misses an update must never fail the request
        log.warning("could not publish usage of %s", record.request_id, exc_info=True)
