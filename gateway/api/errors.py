"""The management API's one error body: ``{"error": {"message", "code", "fields"}}``.

``message`` is a sentence for a person (what was wrong, what to do); ``code`` a stable word for
programs (not_found, permission_denied, invalid, not_authenticated, conflict, ...);
``fields`` maps each rejected input field to its messages, and is present only then.
The same shape as /api/billing/*'s errors, so a client reads every /api error one way.

Django's own answers under /api/ take this shape too, instead of its HTML pages: the catch-all
``unknown_endpoint`` (404), ``csrf_failure`` (settings.CSRF_FAILURE_VIEW) and the ``handler400``,
``handler403``, ``handler404`` and ``handler500`` of gateway/urls.py; elsewhere they answer
with Django's pages.
"""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.views import csrf, defaults
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

log = logging.getLogger(__name__)

SERVER_FAILED = "The server failed on this request. Retry, and tell the operator if it persists."


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


ERROR = inline_serializer("Error", {"error": inline_serializer("ErrorDetail", {
    "message": serializers.CharField(),
    "code": serializers.CharField(),
    "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False),
})})
ERRORS = {
    400: OpenApiResponse(ERROR, description="Invalid input: ``fields`` says which and why."),
    401: OpenApiResponse(ERROR, description="Not signed in, or the API key is unknown, revoked or expired."),
    403: OpenApiResponse(ERROR, description="The caller's role (or key scope, or CSRF token) does not allow it."),
    404: OpenApiResponse(ERROR, description="No such tenant among the caller's, or no such object in it."),
    409: OpenApiResponse(ERROR, description="The tenant's state or plan does not allow it (the message says why)."),
}


def errors(*statuses: int) -> dict:
    """The error answers an operation documents: 401, 403 and 404 always, and ``statuses``."""
    return {code: ERRORS[code] for code in (401, 403, 404, *statuses)}


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


def field_messages(detail: dict, prefix: str = "") -> dict:
    """Each rejected field's messages; a nested object's fields as ``outer.inner`` (a key's
    ``budget.amount``), a list's items under the list's name."""
    fields = {}
    for name, value in detail.items():
        if isinstance(value, dict) and all(isinstance(inner, str) for inner in value):
            fields.update(field_messages(value, f"{prefix}{name}."))
        else:
            fields[f"{prefix}{name}"] = flatten(value)
    return fields


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
        return Response(error_body(SERVER_FAILED, code="server_error"), status=500)
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        fields = field_messages(exc.detail)
        response.data = error_body(describe_invalid(fields), code="invalid", fields=fields)
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "invalid"
        response.data = error_body(" ".join(flatten(exc.detail)), code=code)
    return response


def is_api_request(request) -> bool:
    return request.path_info.startswith("/api/")


def error_response(message: str, *, code: str, status: int) -> JsonResponse:
    return JsonResponse(error_body(message, code=code), status=status)


@csrf_exempt  # a 404 changes nothing, and a CSRF refusal would hide that the path is wrong
def unknown_endpoint(request, rest: str = ""):
    """Any other path under /api/: JSON, not the site's HTML 404 page."""
    return error_response(f"Unknown endpoint {request.method} {request.path}. The API's endpoints are listed at "
                          "/api/docs/.", code="not_found", status=404)


def csrf_failure(request, reason: str = ""):
    """settings.CSRF_FAILURE_VIEW: a signed-in write under /api/ without the token (the
    /api/billing/* forms), in JSON; Django's page elsewhere."""
    if not is_api_request(request):
        return csrf.csrf_failure(request, reason)
    return error_response(f"CSRF check failed: {reason} Signed-in writes must send the csrftoken cookie's value in "
                          "the X-CSRFToken header; scripts can use an API key with the 'management' scope instead.",
                          code="permission_denied", status=403)


def bad_request(request, exception):
    if not is_api_request(request):
        return defaults.bad_request(request, exception)
    return error_response("The server could not read this request.", code="bad_request", status=400)


def permission_denied(request, exception):
    if not is_api_request(request):
        return defaults.permission_denied(request, exception)
    return error_response("You may not do this.", code="permission_denied", status=403)


def page_not_found(request, exception):
    if not is_api_request(request):
        return defaults.page_not_found(request, exception)
    return error_response(f"Nothing at {request.method} {request.path}. The API's endpoints are listed at "
                          "/api/docs/.", code="not_found", status=404)


def server_error(request):
    if not is_api_request(request):
        return defaults.server_error(request)
    return error_response(SERVER_FAILED, code="server_error", status=500)
