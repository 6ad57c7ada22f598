"""fal.ai's queue, which every fal model is called through: the calls and fal's errors.

    submit   POST {base_url}/{model id}         the model's JSON input -> {request_id, status_url,
                                                response_url, cancel_url} (status IN_QUEUE)
    status   GET  {status_url}?logs=1           202 IN_QUEUE {queue_position} | 202 IN_PROGRESS
                                                {logs} | 200 COMPLETED {logs, metrics, error?}
    result   GET  {response_url}                the model's output JSON, no envelope
    cancel   PUT  {cancel_url}                  202 CANCELLATION_REQUESTED | 400 ALREADY_COMPLETED
    auth     Authorization: Key <FAL_API_KEY>   (``key_id:key_secret``, as fal issues keys)

The base URL is the queue host (https://queue.fal.run); the model id is the upstream model name,
so any fal model the operator adds in the admin is served. fal's request URLs carry only the
{owner}/{app} of the model id (fal-ai/flux/dev -> fal-ai/flux/requests/{id}); they are followed
when they are on the base URL's host and otherwise rebuilt there from the request id, so the
key never travels to another host.

Errors (``{"detail": str | [{"loc", "msg", "type"}], "error_type"?}``, or the ``x-fal-error-type``
header): 401, 402, 403 (a locked account, an exhausted balance) -> ProviderAuthFailed; 404 -> ProviderNotFound
(on submit: no such model); 429 -> ProviderRateLimited (Retry-After honoured); an error type
``content_policy_violation`` -> ContentFiltered; 504 or a timeout error type -> ProviderTimeout;
other 5xx, 408, 409 -> ProviderUnavailable; other 4xx (422 validation) -> ProviderBadRequest with
fal's messages. A COMPLETED status carrying an ``error`` is answered by the result URL's error
status, mapped the same way.
"""

import json
import logging
from typing import Any

import httpx

from providers import errors
from providers.adapters.http_calls import (
    error_for_status,
    fetch_json,
    job_error_mapper,
    json_request,
    parse_retry_after,
    redacted_message,
)
from providers.adapters.queue import (
    JobEnded,
    is_missed_look,
    progress_from_logs,
    same_origin,
    wait_for_job,
)
from providers.media_types import VideoJobState
from providers.types import Target

log = logging.getLogger(__name__)

CONTENT_POLICY = "content_policy_violation"
TIMEOUT_TYPES = {"request_timeout", "generation_timeout", "timeout"}
DONE, QUEUED, RUNNING = "COMPLETED", "IN_QUEUE", "IN_PROGRESS"


# --- the queue --------------------------------------------------------------------------------

def queue_request(method: str, url: str, target: Target, *, body: dict | None = None,
                  params: dict | None = None) -> httpx.Request:
    return json_request(method, url, target, body=body, params=params, scheme="Key")


async def submit(payload: dict[str, Any], target: Target) -> dict[str, str]:
    """Queue the model's input; the request's id and URLs (on our base URL's host)."""
    url = f"{target.base_url.rstrip('/')}/{target.upstream_model.strip('/')}"
    answer = await fetch_json(queue_request("POST", url, target, body=payload), target, error_from_response)
    request_id = answer.get("request_id") if isinstance(answer, dict) else None
    if not request_id:
        raise errors.ProviderUnavailable(f"{target.provider} queued the request without an id.",
                                         provider=target.provider)
    return request_urls(answer, request_id, target)


def request_urls(answer: dict, request_id: str, target: Target) -> dict[str, str]:
    # fal's SDK builds the same URLs itself from the request id (from_request_id): {owner}/{app}.
    owner_app = "/".join(target.upstream_model.strip("/").split("/")[:2])
    base = f"{target.base_url.rstrip('/')}/{owner_app}/requests/{request_id}"
    built = {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}
    urls = {name: answer[name] if same_origin(answer.get(name), target.base_url) else url
            for name, url in built.items()}
    return {"request_id": request_id, **urls}


def status_request(handle: dict, target: Target) -> httpx.Request:
    return queue_request("GET", handle["status_url"], target, params={"logs": "1"})


async def run_queued(payload: dict[str, Any], target: Target) -> dict[str, Any]:
    """Submit, wait for COMPLETED (polling the status with backoff), and fetch the output."""
    handle = await submit(payload, target)

    async def check() -> dict[str, Any] | None:
        status = await fetch_json(status_request(handle, target), target, request_error)
        if check_status(status, target) != DONE:
            log_status(status, handle, target)
            return None
        try:
            output = await fetch_json(queue_request("GET", handle["response_url"], target), target, request_error)
        except errors.ProviderError as error:
            if is_missed_look(error):
                raise
            raise JobEnded(error) from error
        if status.get("error"):
            raise JobEnded(failed(status, target))
        return output

    output = await wait_for_job(check, target, lambda: cancel(handle, target))
    if not isinstance(output, dict):
        raise errors.ProviderUnavailable(f"{target.provider} answered with an output that is not an object.",
                                         provider=target.provider)
    return output


async def cancel(handle: dict, target: Target) -> None:
    """Ask fal to stop the request; one already finished (400) or gone (404) needs nothing."""
    try:
        await fetch_json(queue_request("PUT", handle["cancel_url"], target), target, request_error)
    except (errors.ProviderNotFound, errors.ProviderBadRequest):
        return


def check_status(status: Any, target: Target) -> str:
    """The queue status of a status answer; anything but fal's three is a look that failed."""
    value = status.get("status") if isinstance(status, dict) else None
    if value not in (QUEUED, RUNNING, DONE):
        raise errors.ProviderUnavailable(f"{target.provider} answered a status check with status {value!r}.",
                                         provider=target.provider)
    return value


def log_status(status: dict, handle: dict, target: Target) -> None:
    if status.get("status") == QUEUED:
        log.debug("%s %s: queued at position %s", target.provider, handle["request_id"], status.get("queue_position"))
    elif status.get("status") == RUNNING:
        for line in status.get("logs") or ():
            log.debug("%s %s: %s", target.provider, handle["request_id"], line.get("message"))


def queued_state(status: dict, state: VideoJobState, target: Target) -> VideoJobState:
    log_status(status, state.handle, target)
    if status.get("status") == QUEUED:
        return VideoJobState(status="queued", handle=state.handle, progress=0, upstream_model=target.upstream_model)
    lines = [str(line.get("message", "")) for line in status.get("logs") or () if isinstance(line, dict)]
    progress = progress_from_logs(lines)
    return VideoJobState(status="in_progress", handle=state.handle,
                         progress=progress if progress is not None else state.progress,
                         upstream_model=target.upstream_model)


# --- errors -------------------------------------------------------------------------------------

def describe(detail: Any) -> str:
    """fal's ``detail``: a message, or FastAPI's list of {loc, msg, type}."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(part) for part in item.get("loc") or () if part != "body")
                parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail) if detail else ""


def error_type_of(payload: Any, headers: httpx.Headers) -> str:
    if isinstance(payload, dict):
        if payload.get("error_type"):
            return str(payload["error_type"])
        detail = payload.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict) and detail[0].get("type"):
            return str(detail[0]["type"])
    return headers.get("x-fal-error-type", "")


def message_of(payload: Any) -> str:
    return describe(payload.get("detail")) if isinstance(payload, dict) else ""


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    error = error_for_fal_status(status, headers, redacted_message(body, target, message_of),
                                 error_type_of(payload, headers), target)
    error.retry_after = parse_retry_after(headers)
    return error


request_error = job_error_mapper(error_from_response, "request")


def error_for_fal_status(status: int, headers: httpx.Headers, message: str, error_type: str,
                         target: Target) -> errors.ProviderError:
    if status not in (401, 402, 403, 404, 429):  # where the status says nothing plainer, fal's error type does
        text = f"{target.provider} returned {status}: {message}"
        kwargs = {"provider": target.provider, "upstream_status": status}
        if error_type == CONTENT_POLICY:
            return errors.ContentFiltered(text, **kwargs)
        if status == 504 or error_type in TIMEOUT_TYPES:
            return errors.ProviderTimeout(text, **kwargs)
    return error_for_status(status, headers, message, target,
                            auth_hint="the operator must check its key or account balance.",
                            not_found=f"{target.provider} has no model '{target.upstream_model}' (404).")


def failed(status: dict, target: Target) -> errors.ProviderError:
    """A COMPLETED status with an error whose result URL answered 200 anyway."""
    return error_for_fal_status(500, httpx.Headers(), str(status.get("error")), str(status.get("error_type") or ""),
                                target)
