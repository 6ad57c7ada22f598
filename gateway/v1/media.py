"""What every media endpoint shares: checking parameters against the model's media_options,
storing what was generated, and serving stored files.

media_options (providers.models.Model.media_options) declares what a media model accepts;
anything else is refused with a 400 that lists the allowed values, before any provider call:
    sizes            ["1024x1024", ...], or {"1024x1024": "1:1", ...}: sizes and the aspect ratio
                     each stands for (for providers that take ratios)
    default_size     when the client names none (else the first size)
    aspect_ratios    ["16:9", ...]
    qualities, default_quality, styles, formats (output formats), voices, durations, resolutions
    max_n            most outputs per request (10 when not declared)
    max_prompt_chars longest prompt
    edits            false: the model does not edit images (its adapter may)
    extras           provider parameters passed through: ["seed", "negative_prompt", ...]
    image_tokens     token-priced image models: output tokens per image by detail
                     ({"1024x1024/high": 4160, "*": 1290}), for the spend reservation
    input_image_tokens   at most this many input tokens per image sent to edit

Endpoints:
    GET /v1/media/{id}            a stored file's metadata and a fresh signed URL (API key)
    GET /v1/media/{id}/content    its bytes: with the API key, or with the signed URL alone;
                                  Range requests are honoured (video players seek)
"""

import json
import math
import re

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from gateway.access import get_media_file_for_tenant
from gateway.v1.admission import authenticated_call
from gateway.v1.errors import GatewayError, api_view, bad_request
from media import files
from media.models import MediaFile
from providers.blocking import run_blocking
from providers.media_types import GeneratedMedia
from providers.router import ModelInfo

DEFAULT_MAX_N = 10
CHUNK_BYTES = 1024 * 1024


def allowed_values(model: ModelInfo, option: str) -> list | None:
    """The values media_options declares for ``option`` (None: not declared, anything goes)."""
    declared = model.media_options.get(option)
    if declared is None:
        return None
    if isinstance(declared, dict):  # sizes -> aspect ratio: its sizes, in an order of their own
        return sorted(declared, key=size_order)
    return list(declared)


def size_order(size: str) -> tuple:
    """Square first, then pairs of portrait and landscape, nearest to square first. A JSON
    object's key order is not kept by every database (PostgreSQL's jsonb sorts them), so the
    order sizes are listed in, and the default (the first), must not come from it."""
    match = re.fullmatch(r"(\d+)x(\d+)", str(size))
    if not match:
        return (1, 0.0, 0, str(size))
    width, height = int(match[1]), int(match[2])
    return (0, round(abs(math.log(width / height)), 6), width > height, str(size))


def text_field(fields: dict, name: str) -> str | None:
    """A string field, stripped, or None when absent or empty; anything else is a 400."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string, not {json.dumps(value)[:60]}.", param=name)
    return value.strip()


def check_choice(model: ModelInfo, option: str, value, *, param: str) -> None:
    """Refuse ``value`` for ``param`` unless media_options[option] lists it."""
    allowed = allowed_values(model, option)
    if value is None or allowed is None or value in allowed:
        return
    if not allowed:
        raise bad_request(f"'{model.public_id}' does not take {param}; leave it out.", param=param)
    listed = ", ".join(str(item) for item in allowed)
    raise bad_request(f"{param} {value!r} is not available for '{model.public_id}'; use one of: {listed}.",
                      param=param)


def default_choice(model: ModelInfo, option: str, default_key: str):
    """The declared default, else the first allowed value, else None."""
    if default_key in model.media_options:
        return model.media_options[default_key]
    allowed = allowed_values(model, option)
    return allowed[0] if allowed else None


def check_count(model: ModelInfo, n: int, *, param: str = "n") -> None:
    most = int(model.media_options.get("max_n", DEFAULT_MAX_N))
    if n < 1 or n > most:
        if most == 1:
            raise bad_request(f"{param} must be 1 for '{model.public_id}': it makes one output per request. "
                              "Send several requests for more.", param=param)
        raise bad_request(f"{param} must be between 1 and {most} for '{model.public_id}', not {n}.", param=param)


def check_prompt(model: ModelInfo, prompt, *, param: str = "prompt") -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad_request(f"{param} is required: describe what to make.", param=param, code="missing_required_parameter")
    longest = model.media_options.get("max_prompt_chars")
    if longest is not None and len(prompt) > int(longest):
        raise bad_request(f"{param} is {len(prompt)} characters; '{model.public_id}' takes at most {longest}.",
                          param=param)
    return prompt


def check_extras(model: ModelInfo, extras: dict) -> None:
    """Provider parameters beyond the OpenAI shape pass only where the model declares them."""
    declared = model.media_options.get("extras", [])
    for name in extras:
        if name not in declared:
            takes = f"it takes: {', '.join(declared)}" if declared else "it takes none"
            raise bad_request(f"'{model.public_id}' does not take '{name}' ({takes}). Remove it, or pick a model "
                              "that takes it (GET /v1/models lists each model's media options).", param=name)


def public_url(request, path: str) -> str:
    """An absolute URL on the host and scheme the client reached us at."""
    return request.build_absolute_uri(path)


def media_url(request, file: MediaFile) -> str:
    return public_url(request, files.signed_path(file))


async def store_generated(request_id: str, *, tenant_id: int, kind: str,
                          media: list[GeneratedMedia]) -> list[MediaFile]:
    """Keep each generated file (its bytes already fetched into ``content``) as the tenant's."""
    return [await files.astore_media(tenant_id=tenant_id, request_id=request_id, kind=kind,
                                     content=item.content or b"", content_type=item.content_type)
            for item in media]


def describe_media(request, file: MediaFile) -> dict:
    path = files.signed_path(file)
    return {"id": str(file.id), "object": "media", "kind": file.kind, "content_type": file.content_type,
            "bytes": file.size, "created_at": int(file.created_at.timestamp()), "request_id": file.request_id,
            "url": public_url(request, path), "expires_at": files.expires_at_of(path)}


def not_found(file_id: str) -> GatewayError:
    return GatewayError(404, f"No media file '{file_id}' here. Use an id (or URL) this API key's organisation "
                        "generated.", code="media_not_found")


@api_view
async def retrieve_media(request, file_id: str):
    caller = (await authenticated_call(request, method="GET")).caller
    try:
        file = await run_blocking(get_media_file_for_tenant, caller.tenant_id, file_id)
    except MediaFile.DoesNotExist:
        raise not_found(file_id) from None
    return JsonResponse(describe_media(request, file))


@api_view
async def media_content(request, file_id: str):
    """With ``expires`` and ``signature`` the URL is its own credential; without, the API key."""
    if "signature" in request.GET:
        if request.method != "GET":
            raise GatewayError(405, f"{request.path} accepts GET, not {request.method}.", code="method_not_allowed",
                               headers={"Allow": "GET"})
        try:
            file = await run_blocking(files.get_signed_media_file, file_id, request.GET.get("expires", ""),
                                      request.GET["signature"])
        except MediaFile.DoesNotExist:
            raise not_found(file_id) from None
        except files.LinkExpired:
            raise GatewayError(403, f"This link to media '{file_id}' has expired. GET /v1/media/{file_id} with your "
                               "API key for a fresh one.", type="permission_error", code="link_expired") from None
    else:
        caller = (await authenticated_call(request, method="GET")).caller
        try:
            file = await run_blocking(get_media_file_for_tenant, caller.tenant_id, file_id)
        except MediaFile.DoesNotExist:
            raise not_found(file_id) from None
    return file_response(request, file)


RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def requested_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single-range Range header, or None for the whole file."""
    match = RANGE.match(header.strip())
    if not match or not (match[1] or match[2]):
        return None
    if match[1]:
        first = int(match[1])
        last = min(int(match[2]), size - 1) if match[2] else size - 1
    else:  # the last N bytes
        first, last = max(0, size - int(match[2])), size - 1
    if first > last or first >= size:
        raise GatewayError(416, f"The range {header} is outside the file ({size} bytes).", code="range_not_satisfiable",
                           headers={"Content-Range": f"bytes */{size}"})
    return first, last


def file_response(request, file: MediaFile) -> HttpResponse:
    """The file's bytes (or the range asked for), read from the storage in chunks off the loop.

    Generated files come from providers, so they are served as data, never as a page of our
    origin: a known media type inline, anything else as an octet-stream attachment, and a
    sandbox CSP in case a browser renders it anyway."""
    content_type = files.served_content_type(file.content_type)
    disposition = "attachment" if content_type == "application/octet-stream" else "inline"
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600",
               "Content-Disposition": f'{disposition}; filename="{file.id}{files.extension_for(content_type)}"',
               "Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
    span = requested_range(request.headers.get("Range", ""), file.size) if file.size else None
    first, last = span or (0, file.size - 1)
    length = last - first + 1
    if span is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{file.size}"
    response = StreamingHttpResponse(read_chunks(file, first, length), status=206 if span else 200,
                                     content_type=content_type, headers=headers)
    response["Content-Length"] = str(max(length, 0))
    return response


async def read_chunks(file: MediaFile, start: int, length: int):
    handle = await run_blocking(files.media_storage().open, file.storage_name, "rb")
    try:
        if start:
            await run_blocking(handle.seek, start)
        left = length
        while left > 0:
            chunk = await run_blocking(handle.read, min(CHUNK_BYTES, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()  # not awaited: it must happen also when the client left and the task is cancelled
