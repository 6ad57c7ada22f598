"""The one strict JSON reading of a /v1 request body: what every protocol's decoder starts from.

A body is refused with a 400 naming what is wrong when it is not JSON, not a JSON object, sent
with a Content-Type other than JSON, nested deeper than MAX_DEPTH, has a key twice in one
object, a number that is not finite (``1e400``, ``NaN``), or a string with a lone UTF-16
surrogate (``"\\ud800"``, which Python's json accepts but no provider and no UTF-8 encoder
does). What passes can be walked, hashed, encoded and forwarded without surprises.
"""

import functools
import json
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.v1.errors import GatewayError, bad_request
from usage.attribution import MAX_TAGS

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_DEPTH = 64
JSON_TYPES = ("application/json", "application/x-ndjson")  # and any application/*+json


def invalid(message: str, param: str | None = None):
    return bad_request(message, param=param, code="invalid_json")


def check_content_type(content_type: str | None) -> None:
    """A body with a declared type must declare JSON; none at all is taken as JSON (curl -d)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type and media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise bad_request(f"Content-Type {media_type!r} is not JSON: send the body as application/json.",
                          code="unsupported_content_type")


def unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise invalid(f"The key {twice[:80]!r} appears twice in one JSON object; send it once.", param=twice[:80])
    return result


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise invalid(f"The number {text[:40]} is out of range; JSON numbers here must be finite.")
    return value


def no_constant(name: str) -> None:
    raise invalid(f"{name} is not valid JSON; send a finite number.")


# Built once: json.loads(body, object_pairs_hook=...) builds a decoder per call, which cost more
# than parsing a chat request's body (bench/RESULTS.md).
DECODER = json.JSONDecoder(object_pairs_hook=unique_object, parse_float=finite_float, parse_constant=no_constant)


def check_tree(payload: Any, *, strings: bool) -> None:
    """The depth bound, and (when ``strings``) no lone surrogate, walked without recursion."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise invalid(f"The JSON body is nested more than {MAX_DEPTH} levels deep.")
            stack.extend((item, depth + 1) for item in value.values())
            if strings:
                stack.extend((key, depth) for key in value)
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                raise invalid(f"The JSON body is nested more than {MAX_DEPTH} levels deep.")
            stack.extend((item, depth + 1) for item in value)
        elif strings and isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise invalid("The JSON body has a string with a lone UTF-16 surrogate (such as \\ud800); send "
                              "valid Unicode text.") from None


def parse_json_object(body: bytes, content_type: str | None = None) -> dict[str, Any]:
    """The body as a dict, or a 400 saying what is wrong with it (module docstring)."""
    check_content_type(content_type)
    try:
        # As json.loads(bytes) reads them: UTF-8, -16 or -32, a BOM allowed.
        payload = DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except RecursionError:
        raise invalid(f"The JSON body is nested more than {MAX_DEPTH} levels deep.") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid(f"The request body is not valid JSON ({exc}). Send a JSON object.") from exc
    if not isinstance(payload, dict):
        raise invalid("The request body must be a JSON object.")
    # Escaped surrogates can only come from a \u escape, and nesting past MAX_DEPTH needs more
    # brackets than that: most bodies have neither, and skip the walk.
    escaped = b"\\u" in body
    if escaped or body.count(b"{") + body.count(b"[") > MAX_DEPTH:
        check_tree(payload, strings=escaped)
    return payload


def decoder(function: Callable[..., T]) -> Callable[..., T]:
    """The last line of defence of a protocol's decode: whatever a body holds that the decoder did
    not foresee (a list where a string belongs, say) is the client's 400, never the gateway's 500."""
    @functools.wraps(function)
    def decode(*args, **kwargs) -> T:
        try:
            return function(*args, **kwargs)
        except GatewayError:
            raise
        except Exception as exc:
            log.warning("%s could not decode a request body", function.__qualname__, exc_info=True)
            raise bad_request(f"The request body has a field of a shape this endpoint does not take "
                              f"({type(exc).__name__}: {str(exc)[:120]}). Check each field's type against the API "
                              "reference.", code="invalid_request_body") from exc
    return decode


# The field checks every protocol's decoder shares: a 400 naming the field, never a silent default.

def expect(value: Any, kind: type | tuple[type, ...], param: str, what: str) -> Any:
    # bool is an int in Python; a JSON true is never a valid number here.
    if isinstance(value, bool) and kind is not bool:
        raise bad_request(f"'{param}' must be {what}, not a boolean.", param=param, code="invalid_type")
    if not isinstance(value, kind):
        raise bad_request(f"'{param}' must be {what}, not {json.dumps(value)[:60]}.", param=param,
                          code="invalid_type")
    return value


def number_in(payload: dict, name: str, low: float, high: float) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    expect(value, (int, float), name, "a number")
    if not low <= value <= high:
        raise bad_request(f"'{name}' must be between {low:g} and {high:g}, not {value}.", param=name)
    return float(value)


def positive_int(payload: dict, name: str) -> int | None:
    return int_at_least(payload, name, 1)


def int_at_least(payload: dict, name: str, least: int) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    expect(value, int, name, "an integer")
    if value < least:
        raise bad_request(f"'{name}' must be at least {least}, not {value}.", param=name)
    return value



def decode_metadata(value: Any) -> dict[str, str]:
    """OpenAI's ``metadata``: up to 16 string values under keys of at most 64 characters."""
    if value is None:
        return {}
    expect(value, dict, "metadata", "an object of up to 16 string values")
    if len(value) > MAX_TAGS:
        raise bad_request(f"'metadata' has {len(value)} keys; at most {MAX_TAGS} are allowed.",
                          param="metadata")
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str) or len(item) > 512:
            raise bad_request(f"'metadata.{key[:64]}' must be a string of at most 512 characters under a key of at "
                              "most 64.", param=f"metadata.{key[:64]}")
    return value
