"""With OTEL_EXPORTER_OTLP_ENDPOINT set, each /v1 request is a trace exported over OTLP/HTTP:
spans for authentication, admission, each provider attempt and settlement, carrying the request
id and continuing the client's W3C traceparent."""

import gzip
import secrets

import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from providers import tracing
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from tests.fakes.server import ThreadedServer

HELLO = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


class OtlpReceiver(ThreadedServer):
    """A collector's OTLP/HTTP endpoint: keeps every span POSTed to /v1/traces."""

    thread_name = "otlp-receiver"

    def __init__(self) -> None:
        super().__init__()
        self.spans: list = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self.receive)
        return app

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        self.spans += [span for resource in export.resource_spans for scope in resource.scope_spans
                       for span in scope.spans]
        return web.Response(body=b"", content_type="application/x-protobuf")


def attributes(span) -> dict:
    return {item.key: item.value.string_value or item.value.int_value for item in span.attributes}


@pytest.fixture
def receiver():
    server = OtlpReceiver().start()
    yield server
    server.stop()


def test_a_request_is_one_trace_continuing_the_clients_traceparent(processes, receiver, api_key, fake_openai):
    url = processes.node(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.address, OTEL_BSP_SCHEDULE_DELAY="50",
                         UPSTREAM_MAX_RETRIES="1")
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    fake_openai.enqueue(Reply(status=503), Reply())  # one failed attempt, retried once
    response = httpx.post(f"{url}/v1/chat/completions", json=HELLO, timeout=30, headers={
        "Authorization": f"Bearer {api_key}", "traceparent": f"00-{trace_id}-{parent_id}-01"})
    assert response.status_code == 200
    request_id = response.headers["x-tollgate-request-id"]

    def exported() -> list:
        ours = [span for span in receiver.spans if span.trace_id.hex() == trace_id]
        return ours if any(span.parent_span_id.hex() == parent_id for span in ours) and len(ours) >= 6 else []
    spans = wait_for(exported, timeout=20, what="the request's spans to be exported")
    root = next(span for span in spans if span.parent_span_id.hex() == parent_id)
    assert attributes(root)["tollgate.request_id"] == request_id
    assert attributes(root)["http.route"] == "/v1/chat/completions"
    assert attributes(root)["http.response.status_code"] == 200
    names = sorted(span.name for span in spans if span is not root)
    assert names == ["admit", "authenticate", "provider.attempt", "provider.attempt", "settle"]
    attempts = [attributes(span) for span in spans if span.name == "provider.attempt"]
    assert sorted(attempt["result"] for attempt in attempts) == ["ProviderUnavailable", "ok"]
    assert all(attempt["provider"] == "openai" for attempt in attempts)
    by_id = {span.span_id: span for span in spans}
    assert all(by_id[span.parent_span_id] is root for span in spans if span is not root)
    settle = next(span for span in spans if span.name == "settle")
    assert attributes(settle)["request_id"] == request_id
    assert api_key not in str(spans) and "hello" not in str([attributes(span) for span in spans])


def test_without_an_endpoint_every_span_is_the_one_no_op(api_key, client):
    client.chat.completions.create(**HELLO)
    assert not tracing.is_enabled()
    assert tracing.span("settle") is tracing.start_span("provider.attempt") is tracing.NO_SPAN
    assert tracing.request_span("POST /v1", {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}) is tracing.NO_SPAN
