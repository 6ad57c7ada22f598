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
answers stay in the store for exact hits). A scope's unit vectors are kept as one float32 matrix
(numpy), so a lookup is one matrix-vector product over that scope alone: a few milliseconds for
the 2,000 entries of 1,536 dimensions a tenant may hold (3.5 ms here), where a pass in Python
held the event loop for a quarter of a second. The matrix is rebuilt on the first lookup after the scope changed.
"""

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings


@dataclass(slots=True)
class Remembered:
    vector: np.ndarray  # unit length, float32
    expires_at: float


@dataclass(slots=True)
class Scope:
    """One scope's vectors by digest, and their matrix (None: to be rebuilt)."""

    entries: dict[str, Remembered] = field(default_factory=dict)
    digests: list[str] = field(default_factory=list)
    matrix: np.ndarray | None = None
    expires: np.ndarray | None = None

    def changed(self) -> None:
        self.matrix = self.expires = None

    def search(self, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(similarity, expiry) of each entry of the probe's dimensions, in ``digests`` order."""
        if self.matrix is None:
            kept = [(digest, entry) for digest, entry in self.entries.items() if entry.vector.shape == probe.shape]
            self.digests = [digest for digest, _ in kept]
            self.matrix = np.stack([entry.vector for _, entry in kept]) if kept else np.empty((0, probe.size),
                                                                                              np.float32)
            self.expires = np.array([entry.expires_at for _, entry in kept], dtype=np.float64)
        if self.matrix.shape[1] != probe.size:  # a vector of other dimensions (the model changed)
            self.changed()
            return self.search(probe)
        return self.matrix @ probe, self.expires


@dataclass(slots=True)
class TenantIndex:
    scopes: dict[str, Scope] = field(default_factory=dict)
    order: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)  # (scope, digest), LRU first

    def drop(self, scope: str, digest: str) -> None:
        self.order.pop((scope, digest), None)
        kept = self.scopes.get(scope)
        if kept is not None and kept.entries.pop(digest, None) is not None:
            kept.changed()
            if not kept.entries:
                del self.scopes[scope]


_index: OrderedDict[int, TenantIndex] = OrderedDict()  # tenant id -> its index, least recently used first


def unit(vector: list[float]) -> np.ndarray | None:
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or not array.size:
        return None
    norm = float(np.linalg.norm(array))
    return array / norm if norm and np.isfinite(norm) else None


def nearest(tenant_id: int, scope: str, vector: list[float], threshold: float, *,
            now: float) -> tuple[str, float] | None:
    tenant = _index.get(tenant_id)
    probe = unit(vector)
    kept = tenant.scopes.get(scope) if tenant is not None else None
    if kept is None or probe is None:
        return None
    scores, expires = kept.search(probe)
    for digest in [kept.digests[i] for i in np.flatnonzero(expires <= now)]:
        tenant.drop(scope, digest)
    scores = np.where(expires > now, scores, -np.inf)
    if not scores.size or scores.max() < threshold:
        return None
    position = int(scores.argmax())
    best, score = kept.digests[position], float(scores[position])
    tenant.order.move_to_end((scope, best))
    _index.move_to_end(tenant_id)
    return best, score


def remember(tenant_id: int, scope: str, vector: list[float], digest: str, expires_at: float) -> None:
    normal = unit(vector)
    if normal is None:
        return
    tenant = _index.get(tenant_id)
    if tenant is None:
        tenant = _index[tenant_id] = TenantIndex()
    _index.move_to_end(tenant_id)
    kept = tenant.scopes.setdefault(scope, Scope())
    kept.entries[digest] = Remembered(normal, expires_at)
    kept.changed()
    tenant.order[(scope, digest)] = None
    tenant.order.move_to_end((scope, digest))
    while len(tenant.order) > settings.CACHE_SEMANTIC_MAX_ENTRIES:
        tenant.drop(*next(iter(tenant.order)))
    while len(_index) > settings.CACHE_SEMANTIC_MAX_TENANTS:
        _index.popitem(last=False)


def forget_all() -> None:
    _index.clear()
