"""Meter: what one admitted request really did, settled exactly once however it ends.

Every call that reaches a provider makes a Meter from its Reservation and feeds it as the answer
arrives (first token, produced text, the provider's usage, how it ended). A tool loop
(gateway.serving.tool_loop) calls the model several times in one request: ``next_round()`` keeps
what each call used, and the request's usage is their sum, with the tools the gateway ran. The meter is an async
context manager, and its exit is the one settle site: ``async with meter:`` around the provider
call, or around the whole stream (gateway.serving.chat hands the open scope to the stream), so
every way out (an answer, a provider error, the client leaving, a cancellation, shutdown) passes
through it once. An exception that leaves the scope says how the request ended.

Settlement never fails the client's request: it is retried on the ledger writer, and if the
database still refuses, the open reservation is left for the writer's sweeper and the loss is
logged with the request id.
"""

import asyncio
import dataclasses
import json
import logging
import time
import weakref
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings

from billing.entitlements import TOKENS_PER_IMAGE
from billing.rate_limits import settle_rates
from providers import tracing
from providers.errors import ProviderError
from providers.pricing import TokenPrices, cost_of
from providers.router import ModelInfo, Trace
from providers.types import ChatRequest, ChatResult, Delta, ToolCall, ToolCallDelta, Usage
from usage.live import publish_settled
from usage.models import Ending
from usage.recording import Reservation, Settlement
from usage.recovery import Checkpoint, checkpoint
from usage.writer import writer

log = logging.getLogger(__name__)

SETTLE_ATTEMPTS = 3
CHARS_PER_TOKEN = 4


def estimate_input_tokens(prompt_bytes: int, images: int) -> int:
    """The prompt's tokens when the provider never reports them: ~4 bytes of text per token,
    and each image at the reservation's bound (the most any provider in the catalog counts for
    one), so a cut stream is never billed less for its images than the provider charges."""
    return prompt_bytes // CHARS_PER_TOKEN + images * TOKENS_PER_IMAGE


def estimate_output_tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def prompt_size(chat: ChatRequest) -> tuple[int, int]:
    """UTF-8 bytes of everything the prompt sends, and its image count. Byte-level tokenizers
    never make more tokens than bytes, so this bounds the input tokens from above."""
    size = images = 0
    for message in chat.messages:
        size += len(message.text().encode()) + len((message.reasoning or "").encode())
        size += sum(len(call.arguments.encode()) + len(call.name) for call in message.tool_calls)
        if isinstance(message.content, list):
            images += sum(1 for part in message.content if part.type == "image_url")
    for extra in (chat.tools, chat.response_format):
        if extra:
            size += len(json.dumps(extra).encode())
    return size, images


TOKEN_FIELDS = ("input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "cache_write_tokens")


def summed(first: Usage, second: Usage) -> Usage:
    """Two model calls' token usage as one (a tool loop's rounds)."""
    return Usage(**{name: getattr(first, name) + getattr(second, name) for name in TOKEN_FIELDS})


class Meter:
    def __init__(self, reservation: Reservation, *, started: float, streamed: bool, input_estimate: int):
        self.reservation = reservation
        self.started = started
        self.input_estimate = input_estimate
        self.produced_chars = 0
        self.reasoning_chars = 0  # part of produced_chars
        self.finished = False  # the provider finished its answer (whatever it said of usage)
        self.web_searches = 0
        self.web_fetches = 0
        self.code_seconds = Decimal(0)
        self.earlier: Usage | None = None  # a tool loop's earlier model calls, summed (next_round)
        self.earlier_cost = Decimal(0)  # and what they cost, each at the prices of the model that served it
        self.settlement = Settlement(streamed=streamed)
        self.settling: asyncio.Future | None = None
        self.settled_cost: Decimal | None = None  # cost(), once settling began (it no longer changes)
        self.trace = Trace()  # the router's: who served, and the gateway's overhead (request_log)
        self.loop = asyncio.get_running_loop()
        # The answer may leave before its record commits: a cache hit (nothing was called, and its
        # price, known up front, is held on the lease; should the process die, the sweeper records it).
        self.settles_behind = False
        in_flight(self)

    def served_by(self, model: ModelInfo | None, *, upstream_model: str = "") -> None:
        """The model of the chain that answered (or was tried last): the record's model, provider
        and prices are its own."""
        if model is not None:
            reservation = self.reservation
            reservation.model, reservation.provider, reservation.prices = model.public_id, model.provider, model.prices
        self.settlement.upstream_model = self.settlement.upstream_model or upstream_model

    def produced(self, delta: Delta) -> None:
        """Count a piece of output (for the estimate when the provider never reports usage)."""
        if self.settlement.ttft_ms is None:
            self.settlement.ttft_ms = int((time.monotonic() - self.started) * 1000)
        self.count_output(delta.content, delta.reasoning, delta.tool_calls or ())

    def answered(self, result: ChatResult) -> None:
        """A whole answer: its usage as the provider reported it, and its output counted for the
        estimate should the provider have reported none it could read (final_usage)."""
        self.settlement.usage, self.settlement.upstream_model = result.usage, result.upstream_model
        self.finished = True
        self.count_output(result.content, result.reasoning, result.tool_calls)

    def count_output(self, content: str | None, reasoning: str | None,
                     calls: Iterable[ToolCall | ToolCallDelta]) -> None:
        self.reasoning_chars += len(reasoning or "")
        self.produced_chars += len(content or "") + len(reasoning or "")
        for call in calls:
            self.produced_chars += len(call.name or "") + len(call.arguments)

    def searched(self) -> None:
        """A web search was made for this request (billed at the reservation's search price)."""
        self.web_searches += 1

    def fetched(self) -> None:
        """The web_fetch tool read a page for this request (billed at the plan's price per page)."""
        self.web_fetches += 1

    def executed(self, seconds: Decimal) -> None:
        """The code_interpreter tool ran code this long (billed at the plan's price per second)."""
        self.code_seconds += seconds

    def next_round(self, input_estimate: int) -> None:
        """A tool loop's model call is over and the next one begins: what this one used (reported,
        or estimated as final_usage does) is kept, and the next is counted afresh; its prompt is
        ``input_estimate`` tokens by estimate_input_tokens."""
        finished = self.round_usage()
        self.earlier_cost += cost_of(self.round_prices(), finished)
        self.earlier = summed(self.earlier or Usage(), finished)
        self.settlement.usage = Usage()
        self.produced_chars = self.reasoning_chars = 0
        self.finished = False
        self.input_estimate = input_estimate

    def failed(self, error: ProviderError) -> None:
        self.settlement.http_status = error.status
        self.settlement.error_type = error.code or error.error_type
        self.settlement.ending = Ending.TIMEOUT if error.error_type == "timeout" else Ending.UPSTREAM_ERROR

    def failed_internally(self) -> None:
        self.settlement.http_status = 500
        self.settlement.error_type = "internal_error"
        self.settlement.ending = Ending.UPSTREAM_ERROR

    def client_gone(self) -> None:
        self.settlement.ending = Ending.CLIENT_GONE
        self.settlement.http_status = 499
        self.settlement.error_type = "client_disconnected"

    def ended_by(self, error: BaseException) -> None:
        """The request ended without an answer: the provider's error, the client leaving (a
        cancellation), or the gateway's own failure."""
        if isinstance(error, ProviderError):
            self.failed(error)
        elif isinstance(error, (asyncio.CancelledError, GeneratorExit)):
            self.client_gone()
        else:
            self.failed_internally()

    def round_usage(self) -> Usage:
        """The provider's usage of the model call under way, or, when it never reported any it could
        read (the stream was cut, the provider does not report it, or sent counts that are not
        numbers), our count of an answer that produced output or finished: the prompt estimate
        (estimate_input_tokens) and ~4 characters per output token, the reasoning shown so far
        included (and reported as reasoning tokens)."""
        settlement = self.settlement
        if settlement.usage == Usage() and (self.produced_chars or self.finished
                                            or settlement.ending == Ending.CLIENT_GONE):
            settlement.usage = Usage(input_tokens=self.input_estimate,
                                     output_tokens=estimate_output_tokens(self.produced_chars),
                                     reasoning_tokens=estimate_output_tokens(self.reasoning_chars))
            settlement.usage_estimated = True
        return settlement.usage

    def final_usage(self) -> Usage:
        """The request's usage: its model calls' (round_usage, summed over a tool loop's rounds) and
        the searches, pages read and code seconds the gateway made for it. The same numbers go to
        the client's usage chunk and to the record."""
        usage = self.round_usage()
        if self.earlier is not None:  # summed once: the rounds are over when this is asked
            self.settlement.model_cost = self.loop_model_cost(usage)
            usage = self.settlement.usage = summed(self.earlier, usage)
            self.earlier = None
        usage.web_searches, usage.web_fetches, usage.code_seconds = (
            self.web_searches, self.web_fetches, self.code_seconds)
        return usage

    def cost(self) -> Decimal:
        """What this request costs, from the usage settled (or about to be)."""
        if self.settled_cost is not None:
            return self.settled_cost
        usage = self.final_usage()
        cost = self.reservation.cost_of(usage, self.settlement.model_cost)
        if self.settling is not None:
            self.settled_cost = cost
        return cost

    def round_prices(self) -> TokenPrices:
        """The prices of the model that made the model call under way (or just finished)."""
        return self.trace.model.prices if self.trace.model is not None else self.reservation.prices

    def loop_model_cost(self, current: Usage) -> Decimal | None:
        """A tool loop's model calls, each at the prices of the model that made it, ``current``
        the one under way; None outside a loop (one call: its usage at the reservation's prices)."""
        return None if self.earlier is None else self.earlier_cost + cost_of(self.round_prices(), current)

    async def __aenter__(self) -> "Meter":
        return self

    async def __aexit__(self, kind, error, traceback) -> None:
        """The settle site: how the request ended (from the exception leaving the scope, if any),
        who served it (the trace's model, or the one tried last), then settlement, once."""
        if error is not None:
            self.ended_by(error)
        self.served_by(self.trace.model, upstream_model=self.trace.upstream_model)
        if self.settles_behind and error is None:
            self.start_settling()
            return
        await self.settle()

    def start_settling(self) -> asyncio.Future:
        """Begin settlement now (once), from a snapshot: later changes to this meter (a
        cancellation arriving meanwhile) cannot reach the writer thread half-way."""
        if self.settling is None:
            LIVE.discard(self)
            usage = self.final_usage()
            settle_rates(self.reservation.rate_hold, tokens=usage.input_tokens + usage.output_tokens)
            self.settlement.latency_ms = int((time.monotonic() - self.started) * 1000)
            snapshot = self.settlement.snapshot()
            self.settling = asyncio.ensure_future(self._settle(snapshot))
            SETTLING.add(self.settling)
            self.settling.add_done_callback(SETTLING.discard)
        return self.settling

    async def settle(self) -> None:
        """Settle once; every later call waits for that one. Shielded: a second cancellation
        (client gone, server shutting down) must not stop it half-way."""
        await asyncio.shield(self.start_settling())

    async def _settle(self, settlement: Settlement) -> None:
        with tracing.span("settle", request_id=self.reservation.request_id):
            record = await self._write(settlement)
        if record is not None:
            await publish_settled(record)

    async def _write(self, settlement: Settlement):
        for attempt in range(SETTLE_ATTEMPTS):
            try:
                return await writer.settle(self.reservation, settlement)
            except Exception:
                log.exception("settling request %s failed (attempt %d of %d)", self.reservation.request_id,
                              attempt + 1, SETTLE_ATTEMPTS)
                await asyncio.sleep(0.05 * 4**attempt)
        log.error("request %s was served but could not be recorded; its reservation stays open until the "
                  "ledger writer's sweeper releases it", self.reservation.request_id)
        return None


# --- checkpoints: what a request in flight has produced, on its reservation (usage/recovery.py) ---

LIVE: "weakref.WeakSet[Meter]" = weakref.WeakSet()  # meters not yet settling, in this process
SETTLING: set[asyncio.Future] = set()  # settlements started and not yet committed, in this process


def unsettled() -> int:
    """Requests of this process whose usage record has not committed yet (in flight or settling)."""
    return len(LIVE) + len(SETTLING)
_checkpointers: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def in_flight(meter: Meter) -> None:
    """Count ``meter`` among the requests in flight, and make sure this loop checkpoints them."""
    LIVE.add(meter)
    loop = asyncio.get_running_loop()
    task = _checkpointers.get(loop)
    if task is None or task.done():
        for stale in [other for other in _checkpointers if other.is_closed()]:
            del _checkpointers[stale]
        _checkpointers[loop] = loop.create_task(keep_checkpointing(), name="reservation-checkpoints")


def checkpoint_of(meter: Meter) -> Checkpoint:
    """What the request has produced so far and would cost if its process died now."""
    reported = meter.settlement.usage
    current = reported if reported != Usage() else Usage(
        input_tokens=meter.input_estimate, output_tokens=estimate_output_tokens(meter.produced_chars))
    usage = dataclasses.replace(summed(meter.earlier or Usage(), current), web_searches=meter.web_searches,
                                web_fetches=meter.web_fetches, code_seconds=meter.code_seconds)
    return Checkpoint(meter.reservation.request_id, usage.input_tokens, usage.output_tokens,
                      meter.reservation.cost_of(usage, meter.loop_model_cost(current)))


async def keep_checkpointing() -> None:
    """Every RESERVATION_CHECKPOINT_SECONDS, one write for all of this loop's requests in flight:
    if the process dies, the sweeper records each at its last checkpoint."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(settings.RESERVATION_CHECKPOINT_SECONDS)
        points = [checkpoint_of(meter) for meter in list(LIVE)
                  if meter.settling is None and meter.loop is loop]
        if points:
            try:
                await writer.run(checkpoint, points)
            except Exception:
                log.warning("could not checkpoint %d requests in flight", len(points), exc_info=True)
