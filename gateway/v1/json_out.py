"""JSON bodies the /v1 endpoints send, encoded with orjson (about a tenth of json.dumps' CPU,
bench/RESULTS.md): a server-sent event's data (gateway/v1/sse.py) and a whole answer."""

import json
from typing import Any

import orjson
from django.http import HttpResponse


def dumps(payload: Any) -> bytes:
    try:
        return orjson.dumps(payload)
    except TypeError:  # what orjson does not take (an integer past 64 bits): the standard encoder's JSON
        return json.dumps(payload, separators=(",", ":")).encode()


def json_response(payload: Any) -> HttpResponse:
    """What JsonResponse sends, encoded with orjson."""
    return HttpResponse(dumps(payload), content_type="application/json")
