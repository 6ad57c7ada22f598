"""A streamed chat answer as events: the router's Delta and Finish, then Closing (the answer is
whole: its usage) before settlement and Settled (recorded: its cost) after it, or Failed. ``relay``
meters the events inside the meter's scope, which serve_chat (or the cache, replaying) hands over;
``ChatStream`` is what an entry point iterates."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal

from gateway.serving.errors import log_provider_error
from gateway.serving.meter import Meter
from providers.errors import ProviderError, ProviderStreamBroken
from providers.types import Delta, Finish, StreamEvent, Usage, UsageReport

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Closing:
    """The answer is whole; its usage (the provider's, or the estimate)."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class Settled:
    """The request is recorded: the stream's last event."""

    cost: Decimal


@dataclass(frozen=True, slots=True)
class Failed:
    """The stream ended without an answer: a ProviderError, or the gateway's own failure."""

    error: Exception
    request_id: str


ChatEvent = Delta | Finish | Closing | Settled | Failed



async def relay(first: StreamEvent | None, events: AsyncIterator[StreamEvent], meter: Meter,
                scope: AsyncExitStack, on_complete: Callable[[], Awaitable[None]] | None) -> AsyncIterator[ChatEvent]:
    """The stream's events, metered; ``scope`` (the meter's, handed over by serve_chat) closes once
    however the stream ends: a client that leaves or a cancellation passes through it as such."""
    ending: ChatEvent | None = None
    async with scope:
        try:
            finished = False
            event = first
            while event is not None:
                if isinstance(event, Delta):
                    meter.produced(event)
                    yield event
                elif isinstance(event, Finish):
                    finished = meter.finished = True
                    yield event
                elif isinstance(event, UsageReport):
                    meter.settlement.usage = event.usage
                event = await anext(events, None)
            if not finished:
                provider = meter.reservation.provider
                raise ProviderStreamBroken(f"{provider} ended the stream without finishing.", provider=provider)
            yield Closing(meter.final_usage())
        except ProviderError as error:
            log_provider_error(error, meter.reservation.request_id)
            meter.failed(error)
            ending = Failed(error, meter.reservation.request_id)
        except Exception as error:
            log.exception("stream of request %s failed in the gateway", meter.reservation.request_id)
            meter.failed_internally()
            ending = Failed(error, meter.reservation.request_id)
    if ending is None:
        if on_complete is not None:
            await on_complete()
        ending = Settled(meter.cost())
    yield ending


class ChatStream:
    """A streamed answer's events (ChatEvent), to iterate once. Dropped before its first event
    (the client left in that instant), its scope is closed as the client's leaving; ``close()``
    (sync: Django's response closers call it from a thread) does that on the stream's loop."""

    def __init__(self, events: AsyncIterator[ChatEvent], scope: AsyncExitStack | None = None):
        self.events = events
        self.scope = scope  # the meter's, while no event has been taken (then the events own it)
        self.loop = asyncio.get_running_loop()

    def __aiter__(self) -> "ChatStream":
        return self

    def __anext__(self) -> Awaitable[ChatEvent]:
        """The events' own next step (no coroutine of its own per event); from the first on, the
        events own the scope."""
        self.scope = None
        return anext(self.events)

    async def aclose(self) -> None:
        scope, self.scope = self.scope, None
        if scope is not None:
            await scope.__aexit__(asyncio.CancelledError, asyncio.CancelledError(), None)
        await self.events.aclose()

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self.aclose()))
