"""Anthropic's errors -> our error tree: the HTTP error body ``{"type": "error", "error": {"type",
"message"}}`` and the stream's ``event: error`` (mapping in providers.adapters.anthropic.adapter's docstring)."""

import json
from typing import Any

import httpx

from providers import errors
from providers.adapters.http_calls import parse_retry_after
from providers.types import Target

RETRYABLE_TYPES = {"overloaded_error", "api_error", "timeout_error"}
CREDENTIAL_TYPES = {"authentication_error", "permission_error", "billing_error"}
CONTEXT_PHRASES = ("prompt is too long", "exceed context limit", "context window")


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    detail = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(detail, dict):
        detail = {"type": "", "message": body[:200].decode(errors="replace")}
    error = error_from_detail(detail, target, status=status)
    error.retry_after = parse_retry_after(headers)
    return error


def stream_error(data: dict[str, Any], target: Target, *, produced: bool) -> errors.ProviderError:
    detail = data.get("error") if isinstance(data.get("error"), dict) else {}
    if produced:
        return errors.ProviderStreamBroken(
            f"{target.provider} failed mid-stream ({detail.get('type') or 'error'}): "
            f"{redact(str(detail.get('message') or 'no message'), target)}",
            provider=target.provider,
        )
    return error_from_detail(detail, target, status=None)


def redact(message: str, target: Target) -> str:
    return message.replace(target.api_key, "[redacted]") if target.api_key else message


def error_from_detail(detail: dict[str, Any], target: Target, *, status: int | None) -> errors.ProviderError:
    kind = str(detail.get("type") or "")
    message = redact(str(detail.get("message") or "no message"), target)
    text = f"{target.provider} returned {status or 'a stream error'} ({kind or 'unknown'}): {message}"
    kwargs: dict[str, Any] = {"provider": target.provider, "upstream_status": status}
    if kind == "rate_limit_error" or status == 429:
        return errors.ProviderRateLimited(text, **kwargs)
    if kind in RETRYABLE_TYPES or status in (408, 409) or (status or 0) >= 500:
        return errors.ProviderUnavailable(text, **kwargs)
    if kind in CREDENTIAL_TYPES or status in (401, 402, 403):
        return errors.ProviderAuthFailed(text, **kwargs)
    if kind == "not_found_error" or status == 404:
        return errors.ProviderNotFound(text, **kwargs)
    if any(phrase in message.lower() for phrase in CONTEXT_PHRASES):
        return errors.ContextWindowExceeded(text, **kwargs)
    return errors.ProviderBadRequest(text, **kwargs)
