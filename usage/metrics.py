"""Prometheus metrics of requests, usage and the ledger writer (provider calls: providers/metrics.py).

    record_request(...)     one /v1 request answered: its endpoint, model, provider, status, outcome,
                            latency and, when it reached a provider, time to first token and the
                            gateway's own overhead (gateway/v1/request_log.py)
    record_settled(record)  a usage record written: tokens and cost (usage.recording.settle)
    record_refusal(code)    admission refused a request (rate limit, spend cap, plan)
    OPEN_STREAMS            streamed answers being sent right now
    record_commit(...)      the ledger writer committed a batch: how long it took, what waits

Labels are bounded: endpoints are URL patterns, models and providers the operator's catalog,
outcomes and refusal codes fixed sets. Never a tenant, a key or a request id.
"""

from prometheus_client import Counter, Gauge, Histogram

from providers.metrics import labelled
from usage.models import UsageRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)

REQUESTS = Counter("tollgate_requests", "/v1 requests answered.",
                   ["endpoint", "model", "provider", "status", "outcome"])
LATENCY = Histogram("tollgate_request_seconds", "/v1 requests: from arrival to the last byte sent.",
                    ["endpoint"], buckets=LATENCY_BUCKETS)
TIME_TO_FIRST_TOKEN = Histogram("tollgate_time_to_first_token_seconds",
                                "Streamed answers: from arrival to the first token.", ["model"],
                                buckets=LATENCY_BUCKETS)
OVERHEAD = Histogram("tollgate_gateway_overhead_seconds", "Requests that reached a provider: the client's wait "
                     "for the answer (or its first token) less the provider's time.", ["endpoint"],
                     buckets=OVERHEAD_BUCKETS)
TOKENS = Counter("tollgate_tokens", "Tokens billed.", ["direction", "provider", "model"])
COST = Counter("tollgate_cost_usd", "Cost billed to tenants, in USD.", ["provider", "model"])
REFUSALS = Counter("tollgate_refusals", "Requests refused at admission, by reason (rate_limit_exceeded, "
                   "insufficient_quota, ...).", ["reason"])
OPEN_STREAMS = Gauge("tollgate_open_streams", "Streamed answers being sent.", multiprocess_mode="livesum")
WRITER_QUEUE = Gauge("tollgate_ledger_writer_queue_depth", "Jobs waiting for the ledger writer.",
                     multiprocess_mode="livesum")
WRITER_COMMIT = Histogram("tollgate_ledger_writer_commit_seconds", "The ledger writer's commits (one batch each).",
                          buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))


def record_request(*, endpoint: str, model: str, provider: str, status: int, outcome: str, seconds: float,
                   first_token_seconds: float | None = None, overhead_seconds: float | None = None) -> None:
    labelled(REQUESTS, endpoint, model, provider, str(status), outcome).inc()
    labelled(LATENCY, endpoint).observe(seconds)
    if first_token_seconds is not None:
        labelled(TIME_TO_FIRST_TOKEN, model).observe(first_token_seconds)
    if overhead_seconds is not None:
        labelled(OVERHEAD, endpoint).observe(max(0.0, overhead_seconds))


def record_settled(record: UsageRecord) -> None:
    if record.input_tokens:
        labelled(TOKENS, "input", record.provider, record.model).inc(record.input_tokens)
    if record.output_tokens:
        labelled(TOKENS, "output", record.provider, record.model).inc(record.output_tokens)
    if record.cost:
        labelled(COST, record.provider, record.model).inc(float(record.cost))


def record_refusal(reason: str) -> None:
    REFUSALS.labels(reason).inc()


def record_commit(seconds: float, waiting: int) -> None:
    WRITER_COMMIT.observe(seconds)
    WRITER_QUEUE.set(waiting)
