"""Rate counts in Redis, shared by every node and taken in slices (billing.rate_counts's interface).

A node takes several requests' worth of a key's window in one script call (an INCRBY that stops at
the limit) and counts requests against that slice in memory, so most requests make no Redis round
trip. Redis never grants past the limit, so every node's slices and use together stay within it:
the limit is exact across nodes. A slice is what the request needs plus a share of what is left
(a quarter of the rest, at most a tenth of the limit, in whole requests of its size): near the limit,
exactly one request's worth.

What a node takes and does not use goes back: tokens a settled request did not use join the
node's slice (the next request uses them), and a slice left idle for IDLE_SECONDS, or too small
for a request Redis cannot add to, is handed back. So a node refuses a request only when Redis
has no room for it; the other nodes' spare (a quarter of what was left when they took it, less
near the limit) is back within about IDLE_SECONDS. A window's key expires with its window.

Gauges (requests in flight) are leased the same way: a hash per key of node -> slots held (in use
or spare), beside each node's lease expiry (``@<node>``). A node renews its leases while it holds
any; a node that stopped renewing (it crashed) loses them to the next take after LEASE_SECONDS.

While Redis does not answer, this process counts alone (LocalCounts) for RETRY_SECONDS, logged,
rather than fail every request; what it counted so goes back to those local counts.
"""

import asyncio
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from billing.rate_counts import LocalCounts, Taken, Window

log = logging.getLogger(__name__)

PREFIX = "tollgate:rate:"
SHARE = 4  # a slice's spare is at most this fraction of what the limit leaves
SLICE_FRACTION = 10  # ... and at most this fraction of the limit
IDLE_SECONDS = 1.0  # a spare slice untouched this long goes back
SWEEP_SECONDS = 1.0
LEASE_SECONDS = 30.0  # a node's gauge slots outlive its last renewal by this much
RENEW_SECONDS = 10.0
RETRY_SECONDS = 10.0  # counting alone this long after Redis failed
KEY_SLACK_SECONDS = 5  # a window's key outlives the window by this much (nodes' clocks differ)
REDIS_ERRORS = (RedisError, OSError)

# KEYS[1]: the window's key. ARGV: need (what the node lacks), request (its size), most spare, share,
# limit, expiry (unix ms). The spare is in whole requests. -> {granted, used}
TAKE_WINDOW = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local need, request, spare = tonumber(ARGV[1]), math.max(tonumber(ARGV[2]), 1), tonumber(ARGV[3])
local share, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local left = limit - used
if left < need then return {0, used} end
local granted = need + request * math.min(math.floor(spare / request), math.floor((left - need) / (share * request)))
used = redis.call('INCRBY', KEYS[1], granted)
redis.call('PEXPIREAT', KEYS[1], ARGV[6])
return {granted, used}
"""
# KEYS[1]: the window's key. ARGV: amount (negative: given back), expiry. A window gone stays gone.
ADD_WINDOW = """
local amount = tonumber(ARGV[1])
if amount < 0 and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local used = redis.call('INCRBY', KEYS[1], amount)
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return used
"""
# KEYS[1]: the gauge's hash. ARGV: node, need, most spare, share, limit, lease (ms). -> {granted, used}
TAKE_SLOTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = redis.call('HGETALL', KEYS[1])
local used = 0
for i = 1, #fields, 2 do
  local node = fields[i]
  if string.sub(node, 1, 1) ~= '@' then
    local lease = tonumber(redis.call('HGET', KEYS[1], '@' .. node) or '0')
    if node ~= ARGV[1] and lease < now then
      redis.call('HDEL', KEYS[1], node, '@' .. node)
    else
      used = used + tonumber(fields[i + 1])
    end
  end
end
local need, spare, share, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local left = limit - used
if left < need then return {0, used} end
local granted = need + math.min(spare, math.floor((left - need) / share))
redis.call('HINCRBY', KEYS[1], ARGV[1], granted)
redis.call('HSET', KEYS[1], '@' .. ARGV[1], now + tonumber(ARGV[6]))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {granted, used + granted}
"""
# KEYS[1]: the gauge's hash. ARGV: node, slots given back.
GIVE_SLOTS = """
local held = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if held <= 0 then redis.call('HDEL', KEYS[1], ARGV[1], '@' .. ARGV[1]) end
return held
"""
# KEYS: the gauges' hashes this node holds slots of. ARGV: node, lease (ms).
RENEW_SLOTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, key in ipairs(KEYS) do
  if redis.call('HEXISTS', key, ARGV[1]) == 1 then
    redis.call('HSET', key, '@' .. ARGV[1], now + tonumber(ARGV[2]))
    redis.call('PEXPIRE', key, ARGV[2])
  end
end
return #KEYS
"""
SCRIPTS = {"take_window": TAKE_WINDOW, "add_window": ADD_WINDOW, "take_slots": TAKE_SLOTS,
           "give_slots": GIVE_SLOTS, "renew_slots": RENEW_SLOTS}


@dataclass(slots=True)
class Slice:
    """What this node holds of one window or gauge."""

    window: Window | None = None  # None: a gauge
    spare: int = 0  # taken from Redis and not used yet
    seen: int = 0  # the count in Redis at its last answer, this node's whole slice included
    in_use: int = 0  # a gauge's: acquired and not released
    touched: float = 0.0  # monotonic


def window_key(name: str, window: Window) -> str:
    return f"{PREFIX}{name}:{window.start}"


def gauge_key(name: str) -> str:
    return f"{PREFIX}{name}"


def expiry_ms(window: Window) -> int:
    return (window.ends + KEY_SLACK_SECONDS) * 1000


def most_spare(limit: int) -> int:
    return limit // SLICE_FRACTION


class SlicedCounts:
    """This node's slices of the counts in Redis. One per event loop (its Redis connections are
    the loop's); ``node`` names its gauge leases; ``clock`` (monotonic) times idle slices."""

    def __init__(self, url: str, *, node: str = "", clock=time.monotonic):
        import redis.asyncio

        self.url = url
        self.redis = redis.asyncio.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        self.scripts = {name: self.redis.register_script(text) for name, text in SCRIPTS.items()}
        self.node = node or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.clock = clock
        self.windows: dict[str, Slice] = {}
        self.gauges: dict[str, Slice] = {}
        self.fallback = LocalCounts()
        self.down_until = 0.0
        self.renewed = clock()
        self.tasks: set[asyncio.Task] = set()
        self.sweeper: asyncio.Task | None = None

    async def take(self, name: str, window: Window, need: int, limit: int) -> Taken:
        held = self.windows.get(name)
        if held is None or held.window != window:
            held = self.windows[name] = Slice(window)
        held.touched = self.clock()
        while held.spare < need:
            if self.is_down():
                return await self.fallback.take(name, window, need, limit)
            try:
                granted = await self.ask(held, "take_window", [window_key(name, window)],
                                         [need - held.spare, need, most_spare(limit), SHARE, limit, expiry_ms(window)])
            except REDIS_ERRORS as error:
                self.went_down(error)
                return await self.fallback.take(name, window, need, limit)
            if not granted:
                if held.spare:  # too little for this request: maybe enough for another node's
                    self.later(self.hand_back(name, held))
                return Taken(False, held.seen - held.spare, self)
        held.spare -= need
        self.keep_sweeping()
        return Taken(True, held.seen - held.spare, self)

    def add(self, name: str, window: Window, amount: int) -> None:
        held = self.windows.get(name)
        if held is not None and held.window == window:
            held.touched = self.clock()
            if amount < 0:  # the node's to use next, or to hand back once idle
                held.spare -= amount
                return
            covered = min(amount, held.spare)
            held.spare -= covered
            amount -= covered
        if amount > 0:
            self.later(self.scripts["add_window"](keys=[window_key(name, window)], args=[amount, expiry_ms(window)]))

    async def acquire(self, name: str, limit: int) -> Taken:
        held = self.gauges.setdefault(name, Slice())
        held.touched = self.clock()
        while held.spare < 1:
            if self.is_down():
                return await self.fallback.acquire(name, limit)
            try:
                granted = await self.ask(held, "take_slots", [gauge_key(name)],
                                         [self.node, 1 - held.spare, most_spare(limit), SHARE, limit,
                                          int(LEASE_SECONDS * 1000)])
            except REDIS_ERRORS as error:
                self.went_down(error)
                return await self.fallback.acquire(name, limit)
            if not granted:
                return Taken(False, held.seen - held.spare, self)
        held.spare -= 1
        held.in_use += 1
        self.keep_sweeping()
        return Taken(True, held.seen - held.spare, self)

    def release(self, name: str) -> None:
        held = self.gauges.get(name)
        if held is not None and held.in_use > 0:
            held.in_use -= 1
            held.spare += 1
            held.touched = self.clock()

    async def ask(self, held: Slice, script: str, keys: list[str], args: list) -> int:
        """Run a taking script; what it grants joins ``held``'s spare, even when the request that
        asked is cancelled meanwhile (the node then holds it, and hands it back once idle)."""
        pending = asyncio.ensure_future(self.scripts[script](keys=keys, args=args))

        def keep(done: asyncio.Future) -> int:
            granted, used = (int(value) for value in done.result())
            held.spare += granted
            held.seen = max(held.seen, used)
            return granted

        try:
            await asyncio.shield(pending)
        except asyncio.CancelledError:
            pending.add_done_callback(lambda done: done.cancelled() or done.exception() or keep(done))
            raise
        return keep(pending)

    def forget(self) -> None:
        """Drop every slice held (tests: a fresh start; what Redis holds expires there)."""
        self.windows.clear()
        self.gauges.clear()
        self.fallback.clear()

    async def close(self) -> None:
        """Stop sweeping and close the connections; what the node holds stays until it expires."""
        if self.sweeper is not None:
            self.sweeper.cancel()
        await self.redis.aclose()

    # --- in the background: idle slices back, gauge leases renewed ---------------------------------

    async def sweep(self) -> None:
        """Hand back the spare of every slice idle for IDLE_SECONDS, forget ended windows and empty
        gauges, and renew this node's gauge leases every RENEW_SECONDS."""
        now, wall = self.clock(), time.time()
        for name, held in list(self.windows.items()):
            if held.window.ends <= wall:
                del self.windows[name]  # its key expires with it
        if self.is_down():
            return
        calls = [self.hand_back(name, held) for name, held in self.windows.items()
                 if held.spare and now - held.touched >= IDLE_SECONDS]
        for name, held in list(self.gauges.items()):
            if held.spare and now - held.touched >= IDLE_SECONDS:
                calls.append(self.give_slots(name, held))
            elif not held.in_use and not held.spare and now - held.touched >= IDLE_SECONDS:
                del self.gauges[name]  # (not one an acquire is waiting on: it touched it)
        if self.gauges and now - self.renewed >= RENEW_SECONDS:
            self.renewed = now
            calls.append(self.scripts["renew_slots"](keys=[gauge_key(name) for name in self.gauges],
                                                     args=[self.node, int(LEASE_SECONDS * 1000)]))
        for outcome in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("rate limits: handing slices back to Redis failed (%s)", outcome)

    async def give_slots(self, name: str, held: Slice) -> None:
        """Give a gauge's spare places back to Redis; kept, should Redis not answer (the node's
        lease holds them there still)."""
        spare, held.spare = held.spare, 0
        held.seen -= spare
        try:
            await self.scripts["give_slots"](keys=[gauge_key(name)], args=[self.node, spare])
        except BaseException:
            held.spare += spare
            held.seen += spare
            raise

    def hand_back(self, name: str, held: Slice):
        """Give a window's spare back to Redis (a call to await)."""
        spare, held.spare = held.spare, 0
        held.seen -= spare
        return self.scripts["add_window"](keys=[window_key(name, held.window)], args=[-spare, expiry_ms(held.window)])

    def keep_sweeping(self) -> None:
        if self.sweeper is None or self.sweeper.done():
            self.sweeper = asyncio.get_running_loop().create_task(self.sweep_forever(), name="rate-slices")

    async def sweep_forever(self) -> None:
        while self.windows or self.gauges:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Exception:
                log.exception("rate limits: sweeping slices failed")

    def later(self, call) -> None:
        task = asyncio.get_running_loop().create_task(self.quietly(call))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def quietly(self, call) -> None:
        try:
            await call
        except REDIS_ERRORS as error:
            log.warning("rate limits: correcting a window in Redis failed (%s)", error)

    def is_down(self) -> bool:
        return self.clock() < self.down_until

    def went_down(self, error: Exception) -> None:
        log.warning("rate limits: Redis unavailable (%s); this process counts alone for %.0fs", error, RETRY_SECONDS)
        self.down_until = self.clock() + RETRY_SECONDS
