"""Where cached answers are kept: Redis when REDIS_URL is set, else the database (CacheEntry).

    await find(tenant_id, digest)        the tenant's answer under that digest, if not expired
    await keep(tenant_id, digest, answer)   keep it until answer.expires_at (not one larger than
                                          CACHE_MAX_ENTRY_BYTES); past CACHE_MAX_ENTRIES_PER_TENANT
                                          answers or CACHE_MAX_BYTES_PER_TENANT bytes, the tenant's
                                          oldest answers go

An answer is only ever found under its own tenant: the tenant is part of every Redis key, of
every database lookup and of every key of the process's own copy, besides being part of the
digest. ``clock`` (epoch seconds) is the one time source, so tests move it rather than sleep;
Redis's own expiry only reclaims the memory, a little after the clock says the answer expired.

Each process also keeps the answers it kept or found lately (at most CACHE_LOCAL_BYTES of them,
least recently used out first), so a hit it has seen before costs no round trip. A copy is served
for CACHE_LOCAL_SECONDS after it was taken, then the store is asked again: an answer another
process replaced (a request with Cache-Control: no-cache) or the store pushed out reaches every
process within that time, and an expired copy never hides a fresh answer in the store.

Database writes go through the ledger writer (usage/writer.py), the hot path's one writing
connection; reads run on the shared executor (providers/blocking.py).
"""

import asyncio
import logging
import time
from collections import OrderedDict

from django.conf import settings
from django.db.models import Count, Sum
from redis.exceptions import RedisError

from caching.answers import CachedAnswer, from_json, to_json
from caching.models import CacheEntry
from providers.blocking import run_blocking
from usage.writer import writer

log = logging.getLogger(__name__)

clock = time.time
REDIS_PREFIX = "tollgate:cache:"
REDIS_SLACK_SECONDS = 60  # Redis keeps an entry this much past its expiry: the clock decides, not Redis


async def find(tenant_id: int, digest: str) -> CachedAnswer | None:
    text = local_copy(tenant_id, digest)
    if text is not None:
        answer = from_json(text)
        if answer.expires_at > clock():
            return answer  # else expired here: the store may hold a fresher one
    text = await find_kept(tenant_id, digest)
    if text is None:
        return None
    copy_locally(tenant_id, digest, text)
    answer = from_json(text)
    return answer if answer.expires_at > clock() else None


async def find_kept(tenant_id: int, digest: str) -> str | None:
    redis = redis_client()
    if redis is None:
        return await run_blocking(read_entry, tenant_id, digest, clock())
    try:
        return await redis.get(entry_key(tenant_id, digest))
    except (RedisError, OSError) as error:
        log.warning("answer cache: Redis unavailable (%s); answering without the cache", error)
        return None


async def keep(tenant_id: int, digest: str, answer: CachedAnswer) -> bool:
    """Whether the answer was kept."""
    text = to_json(answer)
    if len(text.encode()) > settings.CACHE_MAX_ENTRY_BYTES:
        return False
    redis = redis_client()
    if redis is None:
        await writer.run(write_entry, tenant_id, digest, text, answer.stored_at, answer.expires_at,
                         settings.CACHE_MAX_ENTRIES_PER_TENANT, settings.CACHE_MAX_BYTES_PER_TENANT)
    else:
        try:
            await write_redis(redis, tenant_id, digest, text, answer)
        except (RedisError, OSError) as error:
            log.warning("answer cache: Redis unavailable (%s); the answer was not kept", error)
            return False
    copy_locally(tenant_id, digest, text)
    return True


# --- the process's own copies ---------------------------------------------------------------------

# (tenant id, digest) -> (the answer's JSON, when the copy was taken by ``clock``)
_local: OrderedDict[tuple[int, str], tuple[str, float]] = OrderedDict()
_local_bytes = [0]


def local_copy(tenant_id: int, digest: str) -> str | None:
    """The process's copy, if taken within CACHE_LOCAL_SECONDS."""
    copy = _local.get((tenant_id, digest))
    if copy is None:
        return None
    if clock() - copy[1] > settings.CACHE_LOCAL_SECONDS:
        _local_bytes[0] -= len(_local.pop((tenant_id, digest))[0])
        return None
    _local.move_to_end((tenant_id, digest))
    return copy[0]


def copy_locally(tenant_id: int, digest: str, text: str) -> None:
    limit = settings.CACHE_LOCAL_BYTES
    if len(text) > limit:
        return
    old = _local.pop((tenant_id, digest), None)
    _local_bytes[0] += len(text) - (len(old[0]) if old else 0)
    _local[(tenant_id, digest)] = (text, clock())
    while _local_bytes[0] > limit and _local:
        _local_bytes[0] -= len(_local.popitem(last=False)[1][0])


def forget_local_copies() -> None:
    _local.clear()
    _local_bytes[0] = 0


# --- the database --------------------------------------------------------------------------------

def read_entry(tenant_id: int, digest: str, now: float) -> str | None:
    return (CacheEntry.objects.filter(tenant_id=tenant_id, digest=digest, expires_at__gt=now)
            .values_list("answer", flat=True).first())


def write_entry(tenant_id: int, digest: str, text: str, stored_at: float, expires_at: float,
                max_entries: int, max_bytes: int) -> None:
    """On the ledger writer, in its transaction: the tenant's expired answers go, this one is
    kept (replacing an older one under the same digest), then the oldest past either bound."""
    entries = CacheEntry.objects.filter(tenant_id=tenant_id)
    entries.filter(expires_at__lte=stored_at).delete()
    CacheEntry.objects.update_or_create(tenant_id=tenant_id, digest=digest, defaults={
        "answer": text, "size": len(text.encode()), "stored_at": stored_at, "expires_at": expires_at})
    kept = entries.aggregate(count=Count("pk"), size=Sum("size"))
    extra_entries, extra_bytes = kept["count"] - max_entries, (kept["size"] or 0) - max_bytes
    if extra_entries <= 0 and extra_bytes <= 0:
        return
    oldest = []
    for pk, size in entries.order_by("stored_at", "pk").values_list("pk", "size").iterator():
        if extra_entries <= 0 and extra_bytes <= 0:
            break
        oldest.append(pk)
        extra_entries, extra_bytes = extra_entries - 1, extra_bytes - size
    CacheEntry.objects.filter(pk__in=oldest).delete()


# --- Redis ---------------------------------------------------------------------------------------

_redis: dict[tuple[asyncio.AbstractEventLoop, str], object] = {}


def redis_client():
    """This event loop's Redis client, or None without REDIS_URL."""
    url = settings.REDIS_URL
    if not url:
        return None
    loop = asyncio.get_running_loop()
    client = _redis.get((loop, url))
    if client is None:
        import redis.asyncio

        for stale in [key for key in _redis if key[0].is_closed()]:
            del _redis[stale]
        client = _redis[(loop, url)] = redis.asyncio.Redis.from_url(url)
    return client


async def close() -> None:
    """Close this event loop's Redis clients (at shutdown)."""
    loop = asyncio.get_running_loop()
    for key in [key for key in _redis if key[0] is loop]:
        await _redis.pop(key).aclose()


def entry_key(tenant_id: int, digest: str) -> str:
    return f"{REDIS_PREFIX}{tenant_id}:{digest}"


def index_key(tenant_id: int) -> str:
    """The tenant's answers by expiry (a sorted set): how its bounds are kept."""
    return f"{REDIS_PREFIX}{tenant_id}:index"


def sizes_key(tenant_id: int) -> str:
    """The tenant's answers' sizes in bytes (a hash by entry key): its byte bound."""
    return f"{REDIS_PREFIX}{tenant_id}:sizes"


# Atomic in Redis, so processes keeping answers at once never miscount: the tenant's expired
# answers go, this one is kept, then those closest to expiring until both bounds hold.
# KEYS: the entry, the index, the sizes; ARGV: text, keep ms, expires at, stored at, size,
# most entries, most bytes, the index's and sizes' own expiry in seconds.
WRITE_SCRIPT = """
local key, index, sizes = KEYS[1], KEYS[2], KEYS[3]
local function drop(member)
  redis.call('ZREM', index, member)
  redis.call('HDEL', sizes, member)
  redis.call('DEL', member)
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', ARGV[4])) do drop(member) end
redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', index, ARGV[3], key)
redis.call('HSET', sizes, key, ARGV[5])
local total = 0
for _, size in ipairs(redis.call('HVALS', sizes)) do total = total + tonumber(size) end
while redis.call('ZCARD', index) > tonumber(ARGV[6]) or total > tonumber(ARGV[7]) do
  local oldest = redis.call('ZRANGE', index, 0, 0)[1]
  if not oldest then break end
  total = total - tonumber(redis.call('HGET', sizes, oldest) or '0')
  drop(oldest)
end
redis.call('EXPIRE', index, ARGV[8])
redis.call('EXPIRE', sizes, ARGV[8])
return total
"""


async def write_redis(redis, tenant_id: int, digest: str, text: str, answer: CachedAnswer) -> None:
    key = entry_key(tenant_id, digest)
    keep_ms = int((answer.expires_at - answer.stored_at + REDIS_SLACK_SECONDS) * 1000)
    await redis.eval(WRITE_SCRIPT, 3, key, index_key(tenant_id), sizes_key(tenant_id), text, keep_ms,
                     answer.expires_at, answer.stored_at, len(text.encode()), settings.CACHE_MAX_ENTRIES_PER_TENANT,
                     settings.CACHE_MAX_BYTES_PER_TENANT, settings.CACHE_MAX_TTL_SECONDS + REDIS_SLACK_SECONDS)
