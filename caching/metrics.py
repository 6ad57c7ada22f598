"""Prometheus counters of the answer cache (the usage/metrics.py pattern: children remembered).

Labels are bounded: the kind is chat or embedding, the result hit, miss or bypass, the reason a
bypass reason (caching.policy.BYPASS_REASONS) or a hit's match (exact, semantic). Never a tenant.
"""

from prometheus_client import Counter

from providers.metrics import labelled

LOOKUPS = Counter("tollgate_cache_requests", "Requests the answer cache could serve, by what it did: hit, miss or "
                  "bypass (reason: why it was not read; for a hit, exact or semantic).", ["kind", "result", "reason"])
SAVED = Counter("tollgate_cache_saved_usd", "What cache hits would have cost tenants, less their cache price, in USD.")
SEMANTIC_EMBEDDINGS = Counter("tollgate_cache_embedding_tokens", "Tokens the semantic cache embedded (billed to "
                              "the operator, not to tenants).", ["model"])
SEMANTIC_COST = Counter("tollgate_cache_embedding_cost_usd", "What the semantic cache's embeddings cost the operator, "
                        "in USD.", ["model"])


def record_lookup(kind: str, result: str, reason: str = "") -> None:
    labelled(LOOKUPS, kind, result, reason).inc()


def record_saved(amount) -> None:
    if amount > 0:
        SAVED.inc(float(amount))


def record_embedding(model: str, tokens: int, cost) -> None:
    labelled(SEMANTIC_EMBEDDINGS, model).inc(tokens)
    if cost:
        labelled(SEMANTIC_COST, model).inc(float(cost))
