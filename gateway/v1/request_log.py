"""One log line and one set of counters per /v1 request, once its answer has been sent.

ApiHandler calls ``finish`` when the last byte of the answer (a stream's too) has left, or the
client has gone. What the request did comes from what the edge kept on it:

    request.request_id                            api_view (errors.py)
    request.call                                  the Call (admission.authenticated_call): its caller,
                                                  and its outcome's meter, for a request that reached
                                                  a provider: model, provider, how it ended, cost,
                                                  first token
    request.failure                               the GatewayError it answered with, if any

The line names the request id, tenant slug, key prefix, endpoint, model, provider, status,
outcome, latency and cost: never the key itself, a prompt or an answer. With LOG_FORMAT=json
(settings.LOGGING) the same fields are the keys of one JSON object.
"""

import logging

from gateway.api_keys import parse_bearer
from providers import tracing
from usage import metrics

log = logging.getLogger("tollgate.requests")

CLIENT_GONE = 499


def endpoint_of(request) -> str:
    """The URL pattern (bounded: never an id from the path)."""
    match = getattr(request, "resolver_match", None) if request is not None else None
    return "/" + match.route if match is not None else "unmatched"


def key_prefix_of(request) -> str:
    """The key's visible prefix (``tg-<prefix>``), only for a key that authenticated."""
    caller = caller_of(request)
    if caller is None or caller.key_id is None:
        return ""
    parts = parse_bearer(request).split("-", 2)
    return "-".join(parts[:2]) if len(parts) == 3 else ""


def caller_of(request):
    call = getattr(request, "call", None)
    return call.caller if call is not None else None


def meter_of(request):
    call = getattr(request, "call", None) if request is not None else None
    return call.outcome.meter if call is not None else None


def outcome_of(request, status: int) -> str:
    meter = meter_of(request)
    if meter is not None and meter.settling is not None:
        return str(meter.settlement.ending)
    if status == CLIENT_GONE:
        return "client_gone"
    failure = getattr(request, "failure", None)
    if failure is not None:
        return failure.type
    return "completed" if status < 400 else "error"


def overhead_of(meter) -> float | None:
    """The client's wait for the answer (a stream's first token) less the provider's time."""
    trace = meter.trace
    if trace is None or not trace.answered:
        return None
    settlement = meter.settlement
    waited = settlement.ttft_ms if settlement.streamed and settlement.ttft_ms is not None else settlement.latency_ms
    return waited / 1000 - (trace.answered - trace.began)


def finish(request, status: int, seconds: float) -> None:
    endpoint = endpoint_of(request)
    meter = meter_of(request)
    model = provider = cost = ""
    first_token = overhead = None
    if meter is not None:
        model, provider = meter.reservation.model, meter.reservation.provider
        if meter.settling is not None:
            cost = str(meter.cost())
            ttft = meter.settlement.ttft_ms
            first_token = ttft / 1000 if ttft is not None and meter.settlement.streamed else None
            overhead = overhead_of(meter)
    outcome = outcome_of(request, status) if request is not None else ("completed" if status < 400 else "error")
    metrics.record_request(endpoint=endpoint, model=model, provider=provider, status=status, outcome=outcome,
                           seconds=seconds, first_token_seconds=first_token, overhead_seconds=overhead)
    request_id = getattr(request, "request_id", "")
    if tracing.is_enabled():
        tracing.annotate(**{"http.route": endpoint, "http.response.status_code": status, "tollgate.outcome": outcome,
                            "tollgate.request_id": request_id, "tollgate.model": model,
                            "tollgate.provider": provider})
    if not log.isEnabledFor(logging.INFO):
        return
    caller = caller_of(request)
    fields = {"request_id": request_id, "tenant": caller.tenant_slug if caller else "",
              "key_prefix": key_prefix_of(request) if caller else "", "method": getattr(request, "method", ""),
              "endpoint": endpoint, "model": model, "provider": provider, "status": status, "outcome": outcome,
              "latency_ms": round(seconds * 1000, 1), "cost": cost}
    log.info("%(method)s %(endpoint)s %(status)s %(outcome)s %(latency_ms)sms model=%(model)s "
             "provider=%(provider)s cost=%(cost)s tenant=%(tenant)s key=%(key_prefix)s %(request_id)s",
             fields, extra=fields)
