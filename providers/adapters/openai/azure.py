"""Azure OpenAI: OpenAI's wire format (openai_compatible) addressed per deployment.

    POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version={version}
    api-key: <one of the resource's keys>      or   Authorization: Bearer <Microsoft Entra ID token>

The same for the media routes (images/generations, images/edits, audio/speech,
audio/transcriptions, audio/translations) and embeddings (openai_embeddings): OpenAICompatibleAdapter's media methods build their requests with this
adapter's url_for, auth_headers and error_from_response. Bodies, answers, streams and error
envelopes are OpenAI's; the request's ``model`` is sent but Azure goes by the deployment in the path.
The media modules tell model families apart by that name (dall-e-3, gpt-image-1, whisper-1, tts-1,
gpt-4o-mini-tts ...), so media deployments must be named after their model (or start with its name).

How the catalog maps onto it: one Provider row per Azure OpenAI resource (wire format
``azure_openai``, base_url = the resource's endpoint ``https://<resource>.openai.azure.com``, a
trailing ``/openai`` accepted too; its credentials = the resource's keys); one Model row per
deployment (public id ``azure/<deployment>``, upstream_name = the deployment's name), or a
Deployment row (upstream_name = the deployment's name) to serve another public model from Azure.
Quirks:
- ``api_version``: the ``api-version`` sent (default DEFAULT_API_VERSION); ``api_versions``:
  ``{deployment: version}`` for deployments called with another one.
- ``auth: "bearer"``: every credential is a Microsoft Entra ID token, sent as ``Authorization:
  Bearer``. A single credential whose secret starts with ``Bearer `` is sent so as well. Entra
  tokens expire within hours: whatever mints them must keep the credential current.

Azure's additions, read here:
- Content filtering. Answers carry ``prompt_filter_results`` (a stream: in a first chunk with
  ``choices: []`` and an empty ``id``/``model``) and ``content_filter_results`` per choice,
  ``{category: {"filtered": bool, "severity": "safe"|"low"|"medium"|"high"}}`` (``jailbreak``:
  ``{"filtered", "detected"}``). A completion the filter stopped ends with finish_reason
  ``content_filter`` (a stream: on its last choice chunk), which the client gets as is. A prompt the
  filter refuses is HTTP 400 ``{"error": {"message", "type": null, "param": "prompt", "code":
  "content_filter", "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
  "content_filter_result": {category: {"filtered", "severity"}, "custom_blocklists": [{"filtered",
  "id"}]}}}}``; image models say ``content_policy_violation`` with ``inner_error`` and
  ``content_filter_results``. Either becomes ContentFiltered naming the filtered categories.
- A refused key is 401 ``{"error": {"code": "401", "message": "Access denied due to invalid
  subscription key or wrong API endpoint. ..."}}``; an unknown deployment 404 ``DeploymentNotFound``;
  a missing or unknown api-version 404 ``{"error": {"code": "404", "message": "Resource not found"}}``
  or 400 ``{"error": {"code": "BadRequest", "message": "API version not supported"}}``. All three are
  the operator's to fix (502 to the client, naming what to fix).
Sources: openai-python ``lib/azure.py`` (the deployment path, ``api-version`` query, ``api-key`` or
``Authorization: Bearer``), Microsoft's content filtering and REST reference pages.
"""

import json
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import httpx

from providers import errors
from providers.adapters.base import Adapter
from providers.adapters.http_calls import parse_retry_after
from providers.adapters.openai.compatible import OpenAICompatibleAdapter
from providers.types import Target

DEFAULT_API_VERSION = "2024-10-21"  # the latest GA version at the time of writing
CONTENT_FILTER_CODES = ("content_filter", "content_policy_violation")


class AzureOpenAIAdapter(OpenAICompatibleAdapter):
    OPERATIONS = frozenset({"complete", "stream", "generate_images", "edit_images", "speech", "transcribe",
                            "translate"})

    wire_format = "azure_openai"

    # Azure's video (Sora) is another API (/openai/v1/video/generations/jobs): not offered, so that
    # supports("submit_video") is false and no video model is served from Azure by mistake.
    submit_video = Adapter.submit_video
    poll_video = Adapter.poll_video
    cancel_video = Adapter.cancel_video
    # Azure's images/variations route is retired (its REST reference: it no longer accepts requests):
    # no variations from Azure, whatever a row declares.
    vary_images = Adapter.vary_images
    # Embeddings are served per deployment like chat (the inherited embed); Azure OpenAI has no
    # moderations or rerank route.
    rerank = Adapter.rerank
    moderate = Adapter.moderate

    def can_rerank(self, target: Target) -> bool:
        return False

    def can_moderate(self, target: Target) -> bool:
        return False

    def url_for(self, target: Target, route: str) -> httpx.URL:
        return deployment_url(target.base_url, target.upstream_model, route, api_version_for(target))

    def auth_headers(self, target: Target) -> dict[str, str]:
        if target.api_key.startswith("Bearer "):
            return {"Authorization": target.api_key}
        if target.quirks.get("auth") == "bearer":
            return {"Authorization": f"Bearer {target.api_key}"}
        return {"api-key": target.api_key}

    def error_from_response(self, status: int, headers: httpx.Headers, body: bytes,
                            target: Target) -> errors.ProviderError:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        error = azure_error(payload, target, status) if isinstance(payload, dict) else None
        if error is None:
            return super().error_from_response(status, headers, body, target)
        error.retry_after = parse_retry_after(headers)
        return error

    def error_from_body(self, payload: dict[str, Any], target: Target, *, status: int | None) -> errors.ProviderError:
        return azure_error(payload, target, status) or super().error_from_body(payload, target, status=status)


def api_version_for(target: Target) -> str:
    """The deployment's own api-version, else the resource's, else the default."""
    per_deployment = target.quirks.get("api_versions") or {}
    return str(per_deployment.get(target.upstream_model) or target.quirks.get("api_version") or DEFAULT_API_VERSION)


def endpoint_of(base_url: str) -> str:
    """The resource's endpoint without a trailing slash or ``/openai`` (both are commonly pasted)."""
    return base_url.rstrip("/").removesuffix("/openai")


@lru_cache(maxsize=1024)
def deployment_url(base_url: str, deployment: str, route: str, api_version: str) -> httpx.URL:
    # Parsed once per deployment and route, not per call (see openai_compatible.route_url).
    return httpx.URL(f"{endpoint_of(base_url)}/openai/deployments/{quote(deployment, safe='')}/{route}",
                     params={"api-version": api_version})


def azure_error(payload: dict[str, Any], target: Target, status: int | None) -> errors.ProviderError | None:
    """Azure's own errors (content filter, deployment, api-version), or None for OpenAI's."""
    detail = payload.get("error")
    if not isinstance(detail, dict):
        return None
    code = str(detail.get("code") or "")
    message = str(detail.get("message") or "")
    kwargs = {"provider": target.provider, "upstream_status": status}
    if code in CONTENT_FILTER_CODES:
        inner = detail.get("innererror") or detail.get("inner_error")
        inner = inner if isinstance(inner, dict) else {}
        results = inner.get("content_filter_result") or inner.get("content_filter_results")
        flagged = filtered_categories(results) or "no category named"
        return errors.ContentFiltered(
            f"{target.provider} refused the request under its content filter ({flagged}). Change the prompt and "
            f"try again.", **kwargs)
    deployment, version = target.upstream_model, api_version_for(target)
    if code == "DeploymentNotFound":
        return errors.ProviderUnavailable(
            f"{target.provider} has no deployment '{deployment}' (HTTP {status} DeploymentNotFound); an operator "
            f"must create it in Azure or fix the model's upstream name.", **kwargs)
    if status == 404 or "api version" in message.lower():
        return errors.ProviderUnavailable(
            f"{target.provider} answered HTTP {status} ({message or code}) for deployment '{deployment}' at "
            f"api-version {version}; an operator must fix the provider's endpoint or its api_version quirk.", **kwargs)
    return None


def filtered_categories(results: Any) -> str:
    """The categories a content filter result flags, e.g. "hate (high), violence (medium), blocklist mine"."""
    if not isinstance(results, dict):
        return ""
    flagged = []
    for category, result in results.items():
        if category == "custom_blocklists":
            entries = result.get("details") if isinstance(result, dict) else result  # newer versions nest them
            flagged += [f"blocklist {entry.get('id')}" for entry in entries or ()
                        if isinstance(entry, dict) and entry.get("filtered")]
        elif isinstance(result, dict) and result.get("filtered"):
            severity = result.get("severity")
            flagged.append(f"{category} ({severity})" if severity else category)
    return ", ".join(flagged)
