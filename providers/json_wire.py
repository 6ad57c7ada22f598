"""JSON on the wire to and from providers (and to clients, gateway/v1/json_out.py), with orjson
where it can: every event of every stream is parsed here (bench/RESULTS.md).

    loads(data)    what json.loads(data) returns, at about a third of its CPU: orjson parses the
                   document, and what orjson refuses (a NaN, a number past double range, a lone
                   UTF-16 surrogate, UTF-16 or -32 bytes) goes to Python's json, which reads it or
                   raises its JSONDecodeError (a ValueError) as before. One difference remains: an
                   integer past 64 bits reads as the nearest float.
    dumps(value)   compact UTF-8 JSON bytes, at about a tenth of json.dumps' CPU; what orjson does
                   not take (an integer past 64 bits, a lone surrogate a provider sent inside a
                   tool call's arguments) is Python's json, ASCII with escapes, as it always was
"""

import json
from typing import Any

import orjson


def loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()
