"""What the cache did for a tenant, per UTC day (CacheDay): hits, misses and the money saved.

    count_lookup(tenant_id, hit=..., saved=...)   one lookup of a request the cache could answer
                                                  (added up in memory; the ledger writer writes
                                                  what has gathered, one upsert per tenant-day,
                                                  nobody waiting)
    cache_summary(tenant_id, days=30)             the window's hits, misses, hit rate and savings

Bypasses are not counted here (they are on /metrics, caching/metrics.py): the hit rate is over
the requests the cache was asked about.
"""

import threading
from datetime import date, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from caching.models import CacheDay
from usage.writer import writer

ZERO = Decimal(0)
ADD_TO_DAY = """
INSERT INTO caching_cacheday (tenant_id, day, hits, misses, saved) VALUES (%s, %s, %s, %s, CAST(%s AS NUMERIC))
ON CONFLICT (tenant_id, day) DO UPDATE SET hits = caching_cacheday.hits + excluded.hits,
    misses = caching_cacheday.misses + excluded.misses, saved = caching_cacheday.saved + excluded.saved
"""


# (tenant id, day) -> [hits, misses, saved] not written yet; a write is queued while it is not empty
_gathered: dict[tuple[int, date], list] = {}
_lock = threading.Lock()


def count_lookup(tenant_id: int, *, hit: bool, saved: Decimal = ZERO) -> None:
    with _lock:
        first = not _gathered
        counts = _gathered.setdefault((tenant_id, timezone.now().date()), [0, 0, ZERO])
        counts[0], counts[1], counts[2] = counts[0] + int(hit), counts[1] + int(not hit), counts[2] + saved
    if first:  # one write carries everything gathered until it runs
        writer.post(write_gathered)


def write_gathered() -> None:
    """On the ledger writer: what has gathered, one upsert per tenant-day."""
    with _lock:
        gathered = dict(_gathered)
        _gathered.clear()
    with connection.cursor() as cursor:
        for (tenant_id, day), (hits, misses, saved) in sorted(gathered.items()):
            cursor.execute(ADD_TO_DAY, [tenant_id, connection.ops.adapt_datefield_value(day), hits, misses, saved])


STATS_DAYS = 30  # what the dashboard and the management API summarise


def cache_summary(tenant_id: int, *, days: int = STATS_DAYS, today: date | None = None) -> dict:
    """``{"days", "hits", "misses", "hit_rate" (0..1, None before any lookup), "saved"}`` over
    the last ``days`` UTC days up to ``today``."""
    last = today or timezone.now().date()
    totals = CacheDay.objects.filter(tenant_id=tenant_id, day__gt=last - timedelta(days=days), day__lte=last) \
        .aggregate(hits=Sum("hits"), misses=Sum("misses"), saved=Sum("saved"))
    hits, misses = totals["hits"] or 0, totals["misses"] or 0
    return {"days": days, "hits": hits, "misses": misses,
            "hit_rate": hits / (hits + misses) if hits + misses else None,
            "saved": Decimal(str(totals["saved"] or ZERO))}
