"""LOG_FORMAT=json: every line a process writes is one JSON object; a /v1 request's line names
who asked, what was served and how it ended, and never the key or the prompt."""

import json
import signal
from decimal import Decimal

import httpx

from tests.conftest import free_port
from usage.models import UsageRecord

PROMPT = "a prompt that must stay out of the logs"


def test_every_line_is_a_json_object_and_a_request_has_one(processes, api_key, tenant, other_tenant):
    port = free_port()
    serve = processes.start(["manage.py", "serve"], WORKERS="1", PORT=str(port), LOG_FORMAT="json")
    url = f"http://127.0.0.1:{port}"
    processes.wait_healthy(serve, url)
    response = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"}, timeout=30,
                          json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]})
    assert response.status_code == 200
    refused = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": "Bearer tg-nosuch-key"}, json={})
    assert refused.status_code == 401
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(30) in (0, -signal.SIGTERM)  # one worker: uvicorn re-raises the signal once drained
    output = processes.output(serve)

    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # each line parses, alone
    assert all(isinstance(line, dict) and {"time", "level", "logger", "message"} <= line.keys() for line in lines)
    requests = [line for line in lines if line["logger"] == "tollgate.requests"]
    assert len(requests) == 2
    served, unauthorized = requests
    record = UsageRecord.objects.get(tenant=tenant)
    assert served["request_id"] == response.headers["x-tollgate-request-id"] == record.request_id
    assert served["tenant"] == tenant.slug and served["key_prefix"] == "-".join(api_key.split("-")[:2])
    assert (served["endpoint"], served["model"], served["provider"]) == (
        "/v1/chat/completions", "openai/gpt-4o-mini", "openai")
    assert (served["status"], served["outcome"], Decimal(served["cost"])) == (200, "completed", record.cost)
    assert isinstance(served["latency_ms"], float) and served["latency_ms"] > 0
    assert (unauthorized["status"], unauthorized["outcome"], unauthorized["tenant"], unauthorized["key_prefix"]) == (
        401, "invalid_request_error", "", "")
    assert api_key not in output and PROMPT not in output and "nosuch" not in output
    assert other_tenant.slug not in output
    assert "color_message" not in output and "\\u001b" not in output  # uvicorn's colour codes stay out
