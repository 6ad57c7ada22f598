"""The semantic cache's index: per tenant, the vectors of the last user messages of cached chat
requests, each pointing at its exact cache entry (caching/store.py holds the answers).

    remember(tenant_id, scope, vector, digest, expires_at)   after an answer is kept
    nearest(tenant_id, scope, vector, threshold)  -> (digest, similarity) of the closest vector
                        of the same scope at or above ``threshold``, or None

``scope`` is the digest of everything else the request says (model, parameters, the messages
before the last user message): only requests that differ in that one message can match.
Similarity is the cosine of the two vectors.

In-process and bounded: each worker keeps its own index, at most CACHE_SEMANTIC_MAX_ENTRIES per
tenant (the least recently matched or added go first) and CACHE_SEMANTIC_MAX_TENANTS tenants.
A worker that has not seen a request cannot match it, and a restart forgets the index (the
answers stay in the store for exact hits). Vectors are float32 arrays, compared in pure Python:
a lookup costs one pass over the tenant's vectors of that scope.
"""

import math
import operator
from array import array
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings


@dataclass(slots=True)
class Remembered:
    vector: array  # unit length
    digest: str
    expires_at: float


# tenant id -> (scope, digest) -> Remembered, least recently used first
_index: OrderedDict[int, OrderedDict[tuple[str, str], Remembered]] = OrderedDict()


def unit(vector: list[float]) -> array | None:
    norm = math.sqrt(sum(value * value for value in vector))
    return array("f", (value / norm for value in vector)) if norm else None


def similarity(a: array, b: array) -> float:
    return sum(map(operator.mul, a, b)) if len(a) == len(b) else -1.0


def nearest(tenant_id: int, scope: str, vector: list[float], threshold: float, *,
            now: float) -> tuple[str, float] | None:
    entries = _index.get(tenant_id)
    probe = unit(vector)
    if not entries or probe is None:
        return None
    best, best_score = None, threshold
    for key, kept in list(entries.items()):
        if kept.expires_at <= now:
            del entries[key]
        elif key[0] == scope:
            score = similarity(probe, kept.vector)
            if score >= best_score:
                best, best_score = key, score
    if best is None:
        return None
    entries.move_to_end(best)
    _index.move_to_end(tenant_id)
    return best[1], best_score


def remember(tenant_id: int, scope: str, vector: list[float], digest: str, expires_at: float) -> None:
    normal = unit(vector)
    if normal is None:
        return
    entries = _index.setdefault(tenant_id, OrderedDict())
    _index.move_to_end(tenant_id)
    entries[(scope, digest)] = Remembered(normal, digest, expires_at)
    entries.move_to_end((scope, digest))
    while len(entries) > settings.CACHE_SEMANTIC_MAX_ENTRIES:
        entries.popitem(last=False)
    while len(_index) > settings.CACHE_SEMANTIC_MAX_TENANTS:
        _index.popitem(last=False)


def forget_all() -> None:
    _index.clear()
