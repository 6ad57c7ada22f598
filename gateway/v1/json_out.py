"""JSON bodies the /v1 endpoints send, encoded with orjson (about a tenth of json.dumps' CPU,
bench/RESULTS.md): a server-sent event's data (gateway/v1/sse.py) and a whole answer."""

from typing import Any

from django.http import HttpResponse

from providers import json_wire

dumps = json_wire.dumps


def json_response(payload: Any) -> HttpResponse:
    """What JsonResponse sends, encoded with orjson."""
    return HttpResponse(dumps(payload), content_type="application/json")
