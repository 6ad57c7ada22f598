"""Gemini API errors: ``{"error": {"code", "message", "status", "details"}}``, sometimes wrapped in a
one-element array. 429/RESOURCE_EXHAUSTED -> rate limited (Retry-After or RetryInfo.retryDelay);
5xx/UNAVAILABLE/INTERNAL -> unavailable; 504 -> timeout; 401/403 and the 400 API_KEY_INVALID quirk ->
auth failed, message scrubbed of the key; 404 -> not found; token-limit 400s -> context window; other
4xx keep Gemini's message. An error inside a stream arrives as bare JSON lines (no ``data:``), as the
official SDK expects (gemini_answer.read_chunks reads both forms).
"""

import json
from typing import Any

import httpx

from providers import errors
from providers.adapters.http_calls import parse_retry_after
from providers.types import Target


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    try:
        detail = first_object(json.loads(body)).get("error")
    except ValueError:
        detail = None
    if not isinstance(detail, dict):
        detail = {"message": body[:200].decode(errors="replace")}
    error = error_from_detail(detail, target, status=status)
    error.retry_after = parse_retry_after(headers) or retry_delay(detail)
    return error


def stream_error(detail: Any, target: Target, *, produced: bool) -> errors.ProviderError:
    detail = detail if isinstance(detail, dict) else {"message": str(detail)}
    code = detail.get("code")
    error = error_from_detail(detail, target, status=code if isinstance(code, int) else 500)
    if produced:  # the answer is already half-sent: nothing to retry, the client must know
        return errors.ProviderStreamBroken(error.message, provider=target.provider, upstream_status=error.upstream_status)
    return error


def retry_delay(detail: dict[str, Any]) -> float | None:
    for item in detail.get("details") or ():
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            try:
                return max(0.0, float(str(item.get("retryDelay", "")).rstrip("s")))
            except ValueError:
                return None
    return None


def error_from_detail(detail: dict[str, Any], target: Target, *, status: int) -> errors.ProviderError:
    grpc_status = str(detail.get("status") or "")
    message = str(detail.get("message") or "no message")
    if target.api_key:
        message = message.replace(target.api_key, "[redacted]")
    reasons = {item.get("reason") for item in detail.get("details") or () if isinstance(item, dict)}
    text = f"{target.provider} returned {status}{' ' + grpc_status if grpc_status else ''}: {message}"
    kwargs = {"provider": target.provider, "upstream_status": status}
    if (status in (401, 403) or grpc_status in ("UNAUTHENTICATED", "PERMISSION_DENIED", "FAILED_PRECONDITION")
            or "API_KEY_INVALID" in reasons):  # FAILED_PRECONDITION: billing or region, the operator's to fix
        return errors.ProviderAuthFailed(
            f"{text} The gateway's credential for {target.provider} was refused; the operator must fix it.", **kwargs
        )
    if status == 429 or grpc_status == "RESOURCE_EXHAUSTED":
        return errors.ProviderRateLimited(text, **kwargs)
    if status == 404 or grpc_status == "NOT_FOUND":
        return errors.ProviderNotFound(text, **kwargs)
    if status == 504 or grpc_status == "DEADLINE_EXCEEDED":
        return errors.ProviderTimeout(text, **kwargs)
    if status in (408, 409) or status >= 500 or grpc_status in ("UNAVAILABLE", "INTERNAL"):
        return errors.ProviderUnavailable(text, **kwargs)
    if "token count" in message and "exceeds" in message:
        return errors.ContextWindowExceeded(text, **kwargs)
    return errors.ProviderBadRequest(text, **kwargs)


def first_object(value: Any) -> dict[str, Any]:
    if isinstance(value, list):  # errors are sometimes wrapped in a one-element array
        value = value[0] if value else {}
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
