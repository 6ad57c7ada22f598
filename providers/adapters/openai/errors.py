"""OpenAI's API as every OpenAI-shaped adapter speaks it (chat, images, audio, video): the key
as a bearer token, and an error body mapped to the gateway's error tree."""

import json
from typing import Any

import httpx

from providers import errors
from providers.adapters.http_calls import credential_refused, parse_retry_after
from providers.types import Target


def bearer_auth(target: Target) -> dict[str, str]:
    return {} if target.quirks.get("auth") == "none" else {"Authorization": f"Bearer {target.api_key}"}


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = {"error": {"message": body[:200].decode(errors="replace")}}
    error = error_from_body(payload if isinstance(payload, dict) else {}, target, status=status)
    error.retry_after = parse_retry_after(headers)
    return error


def error_from_body(payload: dict[str, Any], target: Target, *, status: int | None) -> errors.ProviderError:
    detail = payload.get("error")
    if not isinstance(detail, dict):
        # Hosts of the family built on FastAPI (Voyage, Jina) answer {"detail": "..."}.
        detail = {"message": str(detail or payload.get("detail") or "")}
    message = detail.get("message") or "no message"
    code = str(detail.get("code") or detail.get("type") or "")
    text = f"{target.provider} returned {status or 'a stream error'}: {message}"
    kwargs = {"provider": target.provider, "upstream_status": status}
    if code == "context_length_exceeded":
        return errors.ContextWindowExceeded(text, **kwargs)
    if code in ("content_filter", "content_policy_violation"):
        return errors.ContentFiltered(text, **kwargs)
    if status is None:
        return errors.ProviderStreamBroken(text, **kwargs)
    if status == 429:
        return errors.ProviderRateLimited(text, **kwargs)
    if status in (401, 403):
        return credential_refused(status, target)
    if status == 404:
        # The client named a model we list; the upstream not knowing it is our catalog's fault.
        return errors.ProviderUnavailable(f"{target.provider} does not know the model '{target.upstream_model}' "
                                          f"(HTTP 404); an operator must fix the catalog.", **kwargs)
    if status in (408, 409) or status >= 500:
        return errors.ProviderUnavailable(text, **kwargs)
    return errors.ProviderBadRequest(text, **kwargs)
