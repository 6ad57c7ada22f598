"""The one /v1 error envelope: ``{"error": {"message", "type", "param", "code"}}``.

Statuses are the ones the OpenAI SDKs map to the right exception (400 BadRequest, 401
Authentication, 403 PermissionDenied, 404 NotFound, 413, 429 RateLimit, 5xx InternalServer).
Messages say what was wrong and what to do. An endpoint speaking another vendor's protocol
(/v1/messages) passes its own ``envelope`` to ``api_view``: same errors, that vendor's body.
"""

import functools
import itertools
import logging
import os
from collections.abc import Callable

from django.http import JsonResponse

from billing.entitlements import Refusal
from billing.refusals import DO_NOT_RETRY
from gateway.serving.errors import GatewayError, bad_request, log_provider_error  # noqa: F401 (the edge's names)
from gateway.v1.headers import add_headers, outcome_headers
from providers.errors import ProviderError
from usage.metrics import record_refusal

log = logging.getLogger(__name__)


def error_body(message: str, *, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def as_gateway_error(exc: Exception) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, Refusal):
        headers = dict(exc.headers)
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        if exc.code == "insufficient_quota":
            headers.update(DO_NOT_RETRY)  # the SDKs would retry a 429; a spent cap stays spent
        return GatewayError(exc.status, exc.message, type=exc.type, code=exc.code, headers=headers)
    if isinstance(exc, ProviderError):
        headers = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after else {}
        return GatewayError(exc.status, exc.message, type=exc.error_type, code=exc.code, headers=headers,
                            param=getattr(exc, "param", None))
    raise TypeError(exc)


Envelope = Callable[[GatewayError, str], dict]  # (error, request id) -> the response body


def openai_envelope(error: GatewayError, request_id: str) -> dict:
    return error_body(error.message, type=error.type, param=error.param, code=error.code)


def error_response(error: GatewayError, *, envelope: Envelope = openai_envelope, request_id: str = "") -> JsonResponse:
    response = JsonResponse(envelope(error, request_id), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


# Request ids: a random prefix per process and a counter, 32 hex digits like a uuid4's, unique
# across processes and restarts without a urandom call per request (which also hands the GIL
# to the ledger writer mid-request).
_ids = itertools.count()
_id_prefix = ""


def new_process_ids() -> None:
    global _ids, _id_prefix
    _ids, _id_prefix = itertools.count(), os.urandom(8).hex()


new_process_ids()
os.register_at_fork(after_in_child=new_process_ids)  # forked workers must not share the prefix


def new_request_id() -> str:
    return f"req_{_id_prefix}{next(_ids) & 0xFFFFFFFFFFFFFFFF:016x}"


def client_request_id(request) -> str | None:
    """The client's own x-request-id, echoed back if it is a sane token (never used as ours:
    a client could otherwise make two requests share one usage record)."""
    value = request.headers.get("x-request-id", "")
    return value if 0 < len(value) <= 128 and value.isascii() and value.isprintable() else None


def api_view(view=None, *, envelope: Envelope = openai_envelope):
    """Wrap an async /v1 view: every failure leaves as the envelope, never as an HTML page, and
    every answer carries the request's ids and its outcome's headers (gateway.v1.headers).
    ``@api_view`` answers errors in the OpenAI envelope; ``@api_view(envelope=...)`` in another."""
    if view is None:
        return functools.partial(api_view, envelope=envelope)

    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        request.request_id = new_request_id()
        request.call = None  # the Call, once the key is checked (admission.authenticated_call)
        failure = None
        try:
            response = await view(request, *args, **kwargs)
        except (GatewayError, Refusal) as exc:
            failure = as_gateway_error(exc)
            if isinstance(exc, Refusal):
                record_refusal(exc.code)
        except ProviderError as exc:
            log_provider_error(exc, request.request_id)
            failure = as_gateway_error(exc)
        except Exception:
            log.exception("unhandled error in %s (request %s)", request.path, request.request_id)
            failure = GatewayError(500, f"The gateway failed on this request ({request.request_id}). "
                                   "Retry, and report the request id if it persists.", type="server_error")
        if failure is not None:
            request.failure = failure  # its type is the request's outcome (request_log)
            response = error_response(failure, envelope=envelope, request_id=request.request_id)
        headers = outcome_headers(request.call.outcome) if request.call is not None else {}
        headers["x-request-id"] = client_request_id(request) or request.request_id
        headers["x-tollgate-request-id"] = request.request_id
        add_headers(response, headers)
        return response

    wrapper.csrf_exempt = True
    return wrapper
