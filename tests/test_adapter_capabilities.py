"""Adapters declare what they can do (OPERATIONS, can_* flags) rather than being probed: the
declaration and the methods an adapter implements must agree, so an endpoint that trusts the
flag never calls a method the adapter lacks, and a method is never left unreachable."""

import pytest

from providers.adapters.base import Adapter
from providers.registry import ADAPTERS

# Every call an adapter may declare (base.Adapter.OPERATIONS): chat, media and video jobs.
OPERATIONS = ("complete", "stream", "count_tokens", "generate_images", "edit_images", "vary_images", "speech",
              "transcribe", "translate", "submit_video", "poll_video", "cancel_video")


@pytest.mark.parametrize("wire_format", sorted(ADAPTERS))
def test_declared_media_operations_are_the_implemented_ones(wire_format):
    adapter = ADAPTERS[wire_format]
    implemented = {op for op in OPERATIONS if getattr(adapter, op) is not getattr(Adapter, op)}
    assert adapter.OPERATIONS == implemented
    assert ("submit_video" in implemented) == ("poll_video" in implemented)
