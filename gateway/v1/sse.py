"""Server-sent events as the OpenAI SDKs parse them: ``data: <json>`` + blank line, ``data: [DONE]``."""

from typing import Any

from gateway.v1.json_out import dumps

DONE = b"data: [DONE]\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"
