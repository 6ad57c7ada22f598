"""Prometheus metrics of provider calls, defined low so the router and breakers record into them.

    record_attempt(target, kind)      one call to a deployment ended: "ok", "cancelled" (the client
                                      left), or the error's kind (its class in providers.errors)
    record_retry(provider)            the router waits and calls the same deployment again
    record_fallback(provider, reason) the router left a deployment for the next one of its chain
    record_breaker(key, state)        a deployment's circuit breaker changed state

Labels are bounded: provider slugs and upstream models come from the operator's catalog, error
kinds from providers.errors. Never a tenant, a key or a request id. With PROMETHEUS_MULTIPROC_DIR
set (``manage.py serve``) every worker writes its own file and /metrics adds them up; gauges say
how (``multiprocess_mode``).
"""

from prometheus_client import Counter, Gauge

from providers.types import Target

ATTEMPTS = Counter("tollgate_provider_attempts", "Calls made to a provider deployment; each retry is one.",
                   ["provider", "upstream_model", "result"])
RETRIES = Counter("tollgate_provider_retries", "Calls retried on the same deployment after a retryable error.",
                  ["provider"])
FALLBACKS = Counter("tollgate_provider_fallbacks", "Calls moved on to the next deployment of their chain.",
                    ["provider", "reason"])
ERRORS = Counter("tollgate_provider_errors", "Provider calls that failed, by kind of error.", ["provider", "kind"])
BREAKER_STATE = Gauge("tollgate_breaker_state", "Circuit breaker per deployment: 0 closed, 1 open, 2 half-open "
                      "(the worst any live worker sees).", ["deployment"], multiprocess_mode="livemax")
BREAKER_OPENED = Counter("tollgate_breaker_opened", "Times a deployment's circuit breaker opened.", ["deployment"])

CLOSED, OPEN, HALF_OPEN = 0, 1, 2

_children: dict[tuple, object] = {}
CHILDREN_KEPT = 4096  # label sets are bounded (module docstring); this bounds the memo whatever happens


def labelled(metric, *values: str):
    """``metric.labels(*values)``, remembered: prometheus-client checks and converts the values and
    takes a lock on each call, several times per request (usage/metrics.py records through it too)."""
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = metric.labels(*values)
        if len(_children) < CHILDREN_KEPT:
            _children[key] = child
    return child


def record_attempt(target: Target, kind: str) -> None:
    labelled(ATTEMPTS, target.provider, target.upstream_model, kind if kind in ("ok", "cancelled") else "error").inc()
    if kind not in ("ok", "cancelled"):
        labelled(ERRORS, target.provider, kind).inc()


def record_retry(provider: str) -> None:
    RETRIES.labels(provider or "unknown").inc()


def record_fallback(provider: str, reason: str) -> None:
    FALLBACKS.labels(provider, reason).inc()


def record_breaker(key: str, state: int) -> None:
    BREAKER_STATE.labels(key).set(state)
    if state == OPEN:
        BREAKER_OPENED.labels(key).inc()
