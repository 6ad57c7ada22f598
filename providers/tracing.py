"""OpenTelemetry traces: off unless OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set.

    configure()              at process start (the ASGI lifespan): the SDK, an OTLP/HTTP exporter
                             and a batch processor; the OTEL_* variables configure them as usual
    request_span(name, headers)   the root span of one /v1 request, continuing the client's
                             W3C ``traceparent`` when it sent one; current while the request runs
    span(name, **attrs)      a child span, current inside ``with`` (authentication, admission,
                             settlement)
    start_span(name, **attrs)     a child span that is not made current; end() it yourself (a
                             provider attempt: it lives across a stream's yields)
    annotate(**attrs)        attributes on the current span (the request id, once known)
    shutdown()               export what is buffered (at process stop)

Off, every function hands back one shared no-op object: the SDK is never imported and the hot
path pays a function call. Attributes are bounded facts (ids, provider, model, status), never a
prompt, a key or a tenant's data.
"""

import os
from contextlib import contextmanager

_tracer = None
_provider = None


class NoSpan:
    """What every function returns while tracing is off."""

    def set_attribute(self, key: str, value) -> None:
        pass

    def end(self) -> None:
        pass

    def __enter__(self) -> "NoSpan":
        return self

    def __exit__(self, *exc) -> bool:
        return False


NO_SPAN = NoSpan()


def is_enabled() -> bool:
    return _tracer is not None


def configure() -> bool:
    """Start exporting if an OTLP endpoint is configured; True if traces are on."""
    global _tracer, _provider
    if _tracer is not None:
        return True
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "tollgate")})
    _provider = TracerProvider(resource=resource)
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)
    _tracer = _provider.get_tracer("tollgate")
    return True


def shutdown() -> None:
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()  # flushes the batch processor
    _tracer = _provider = None


@contextmanager
def _request_span(name: str, headers: dict[str, str], attributes: dict):
    from opentelemetry import context, trace
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract(carrier=headers)
    span = _tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
    token = context.attach(trace.set_span_in_context(span, parent))
    try:
        yield span
    finally:
        context.detach(token)
        span.end()


def request_span(name: str, headers: dict[str, str], **attributes):
    """The root span of a request; ``headers`` (lower-case names) may carry ``traceparent``."""
    if _tracer is None:
        return NO_SPAN
    return _request_span(name, headers, attributes)


def span(name: str, **attributes):
    if _tracer is None:
        return NO_SPAN
    return _tracer.start_as_current_span(name, attributes=attributes)


def start_span(name: str, **attributes):
    if _tracer is None:
        return NO_SPAN
    return _tracer.start_span(name, attributes=attributes)


def annotate(**attributes) -> None:
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(attributes)


def failed(span, description: str) -> None:
    """Mark ``span`` as failed (``description``: the error's kind, not its message)."""
    if span is NO_SPAN:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, description))
