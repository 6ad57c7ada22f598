"""The management API's one error body: ``{"error": {"message", "code", "fields"}}``.

``message`` is a sentence for a person (what was wrong, what to do); ``code`` a stable word for
programs (not_found, permission_denied, invalid, not_authenticated, conflict, ...);
``fields`` maps each rejected input field to its messages, and is present only then.
The same shape as /api/billing/*'s errors, so a client reads every /api error one way.
"""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

log = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    """The tenant's state does not allow the request (the last owner, the plan's key limit)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"


class BadGateway(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "bad_gateway"


def error_body(message: str, *, code: str, fields: dict | None = None) -> dict:
    error = {"message": message, "code": code}
    if fields:
        error["fields"] = fields
    return {"error": error}


def flatten(detail) -> list[str]:
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in flatten(value)]
    if isinstance(detail, list):
        return [message for value in detail for message in flatten(value)]
    return [str(detail)]


def field_messages(detail: dict) -> dict:
    return {name: flatten(value) for name, value in detail.items()}


def describe_invalid(fields: dict) -> str:
    parts = [f"{name}: {' '.join(messages)}" if name != "non_field_errors" else " ".join(messages)
             for name, messages in fields.items()]
    return "Invalid request. " + " ".join(parts)


def handle_api_exception(exc, context):
    """DRF's handler, answering every failure in the error body above (also an unexpected one)."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = exception_handler(exc, context)
    if response is None:
        request = context.get("request")
        log.exception("unhandled error in %s", request.path if request is not None else "the management API")
        return Response(error_body("The server failed on this request. Retry, and tell the operator if it "
                                   "persists.", code="server_error"), status=500)
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        fields = field_messages(exc.detail)
        response.data = error_body(describe_invalid(fields), code="invalid", fields=fields)
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "invalid"
        response.data = error_body(" ".join(flatten(exc.detail)), code=code)
    return response


def unknown_endpoint(request, rest: str = ""):
    """Any other path under /api/: JSON, not the site's HTML 404 page."""
    return JsonResponse(error_body(f"Unknown endpoint {request.method} {request.path}. The API's endpoints are "
                                   "listed at /api/docs/.", code="not_found"), status=404)
