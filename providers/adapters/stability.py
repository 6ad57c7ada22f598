"""Stability AI v2beta Stable Image wire format: Stable Image Ultra, Core and Stable Diffusion 3.5.

    POST {base_url}/v2beta/stable-image/generate/{ultra|core|sd3}
    Authorization: Bearer <key>; Accept: application/json (the image comes back base64 in JSON)

- The body is multipart/form-data even without a file (Stability refuses anything else); httpx
  sends multipart only when there is a file part, so a text-to-image call carries an empty
  ``none`` part, as Stability's own examples do.
- The upstream model name picks the route: ``ultra``, ``core``, or an SD 3.5 model
  (``sd3.5-large``, ``sd3.5-large-turbo``, ``sd3.5-medium``) sent to ``sd3`` with ``model``.
- Fields: prompt, negative_prompt, aspect_ratio, seed, output_format, and the extras the model
  declares (``style_preset`` for Core, ``cfg_scale``/``strength``, ...). Stability sizes images by
  aspect ratio: the gateway turns a client's ``size`` into the ratio the model declares for it.
- One image per call (n is 1). Edits are image-to-image (Ultra and SD 3.5): ``image`` plus
  ``strength`` (0.7 unless declared otherwise), ``mode=image-to-image`` for SD 3.5.
- ``finish_reason: CONTENT_FILTERED`` is a refusal (ContentFiltered), never an image.
Errors ([U] in WIRE_FORMATS): ``{"id", "name", "errors": [...]}``: 401 -> our credential refused,
402 -> our account is out of credits (the operator's to fix), 403 and content moderation names ->
content filtered, 429 -> rate limited, 5xx -> unavailable, other 4xx -> bad request.
"""

import base64
import binascii
import json
from typing import Any

import httpx

from providers import errors
from providers.adapters.base import Adapter
from providers.adapters.http_calls import (
    credential_refused,
    fetch_json,
    parse_retry_after,
    timeout_for,
)
from providers.media_types import GeneratedMedia, ImageRequest, ImageResult
from providers.types import Target, Usage

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
DEFAULT_STRENGTH = "0.7"


class StabilityAdapter(Adapter):
    OPERATIONS = frozenset({"generate_images", "edit_images"})

    wire_format = "stability"

    async def generate_images(self, request: ImageRequest, target: Target) -> ImageResult:
        return await self._generate(request, target, edit=False)

    async def edit_images(self, request: ImageRequest, target: Target) -> ImageResult:
        if not request.images:
            raise errors.ProviderBadRequest("An image edit needs the image to change.", provider=target.provider)
        return await self._generate(request, target, edit=True)

    async def _generate(self, request: ImageRequest, target: Target, *, edit: bool) -> ImageResult:
        if request.n != 1:
            raise errors.UnsupportedFeature(f"{target.provider} makes one image per request, not {request.n}.",
                                            provider=target.provider)
        prepared = httpx.Request(
            "POST", route_url(target), data=form_fields(request, target, edit=edit), files=file_parts(request, edit),
            headers={"Authorization": f"Bearer {target.api_key}", "Accept": "application/json"},
            extensions={"timeout": timeout_for(target).as_dict()},
        )
        return parse_image(await fetch_json(prepared, target, error_from_response), request, target)


def route_url(target: Target) -> httpx.URL:
    model = target.upstream_model
    route = model if model in ("ultra", "core") else "sd3"
    return httpx.URL(f"{target.base_url.rstrip('/')}/v2beta/stable-image/generate/{route}")


def form_fields(request: ImageRequest, target: Target, *, edit: bool) -> dict[str, str]:
    fields: dict[str, Any] = {"prompt": request.prompt}
    model = target.upstream_model
    if model not in ("ultra", "core"):
        fields["model"] = model
    if request.negative_prompt:
        fields["negative_prompt"] = request.negative_prompt
    if request.seed is not None:
        fields["seed"] = request.seed
    if request.output_format:
        fields["output_format"] = request.output_format
    if edit:
        fields["strength"] = DEFAULT_STRENGTH
        if model not in ("ultra", "core"):
            fields["mode"] = "image-to-image"
    elif request.aspect_ratio:  # image-to-image keeps the input's ratio
        fields["aspect_ratio"] = request.aspect_ratio
    if request.guidance_scale is not None:
        fields["cfg_scale"] = request.guidance_scale
    fields.update(request.extra)
    return {key: str(value) for key, value in fields.items()}


def file_parts(request: ImageRequest, edit: bool) -> list[tuple[str, tuple[str, bytes, str]]]:
    if edit:
        image = request.images[0]
        return [("image", (image.filename or "image.png", image.content or b"", image.content_type))]
    return [("none", ("", b"", "application/octet-stream"))]


def parse_image(payload: Any, request: ImageRequest, target: Target) -> ImageResult:
    if not isinstance(payload, dict) or not payload.get("image"):
        if isinstance(payload, dict) and payload.get("finish_reason") == "CONTENT_FILTERED":
            raise filtered(target)
        raise errors.ProviderUnavailable(f"{target.provider} answered without an image.", provider=target.provider)
    if payload.get("finish_reason") == "CONTENT_FILTERED":
        raise filtered(target)
    try:
        content = base64.b64decode(payload["image"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.ProviderUnavailable(f"{target.provider} sent an image that is not base64.",
                                         provider=target.provider) from exc
    content_type = FORMATS.get(request.output_format or "png", "image/png")
    usage = Usage(images=1, media_detail=request.size or request.aspect_ratio or "")
    return ImageResult(images=[GeneratedMedia(content_type=content_type, content=content)], usage=usage,
                       upstream_model=target.upstream_model)


def filtered(target: Target) -> errors.ContentFiltered:
    return errors.ContentFiltered(f"{target.provider} filtered the image for its content policy; change the prompt.",
                                  provider=target.provider)


def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    name = str(payload.get("name") or "")
    problems = payload.get("errors") or [payload.get("message") or body[:200].decode(errors="replace")]
    text = f"{target.provider} returned {status} {name}: {'; '.join(str(problem) for problem in problems)}".strip()
    kwargs = {"provider": target.provider, "upstream_status": status}
    if status == 401:
        return credential_refused(status, target)
    if status == 402:
        return errors.ProviderAuthFailed(f"{target.provider} says the gateway's account is out of credits (HTTP 402); "
                                         "an operator must top it up.", **kwargs)
    if status == 403 or "moderation" in name:
        return errors.ContentFiltered(text, **kwargs)
    if status == 429:
        error = errors.ProviderRateLimited(text, **kwargs)
        error.retry_after = parse_retry_after(headers)
        return error
    if status in (408, 409) or status >= 500:
        return errors.ProviderUnavailable(text, **kwargs)
    if status == 404:
        return errors.ProviderUnavailable(f"{target.provider} does not know the model '{target.upstream_model}' "
                                          "(HTTP 404); an operator must fix the catalog.", **kwargs)
    return errors.ProviderBadRequest(text, **kwargs)
