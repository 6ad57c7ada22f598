"""OpenAI Images API: dall-e-2, dall-e-3 and the GPT image models, and the compatible providers
that serve the same routes. OpenAICompatibleAdapter's image methods delegate here.

    POST {base_url}/images/generations   JSON
    POST {base_url}/images/edits         multipart/form-data: image (dall-e-2) or image[] (GPT image
                                         models, up to 16), mask, prompt, model, n, size, quality
    POST {base_url}/images/variations    multipart/form-data: image (a square PNG), model, n, size,
                                         response_format, user; no prompt (dall-e-2 only)
    Authorization: Bearer <key>

URLs, auth headers and error mapping are the calling adapter's (``api``): Azure OpenAI addresses
the same routes per deployment, with an api-version and an ``api-key`` header (openai/azure.py).

- Models other than GPT image ones are asked for ``response_format: b64_json`` (quirk
  ``images_response_format`` names another value, or "" for none): the gateway keeps every image
  in its own storage anyway, and an inline answer saves a download from a URL that expires in an
  hour. GPT image models refuse ``response_format`` and always answer b64_json.
- ``style`` goes to dall-e-3 only; ``output_format`` to GPT image models only.
- Extras the model declares (``background``, ``output_compression``, ``moderation``, ``seed``,
  ``negative_prompt``, ``steps``, ... for compatible providers) go into the body as named.
- Usage: one image per ``data`` entry, at ``<size>/<quality>`` as the answer states them (GPT image
  models echo both) or as asked; GPT image models also report tokens (``usage.input_tokens``,
  ``output_tokens``), which is what they are priced by.
Errors are the Chat Completions envelope, mapped by the adapter's error_from_response.
"""

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

import httpx

from providers import errors
from providers.adapters.http_calls import fetch_json, timeout_for
from providers.media_types import GeneratedMedia, ImageRequest, ImageResult
from providers.types import Target, Usage

if TYPE_CHECKING:
    from providers.adapters.openai.compatible import OpenAICompatibleAdapter

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}
PASSED_THROUGH = ("seed", "negative_prompt", "guidance_scale", "steps")


def is_gpt_image(model: str) -> bool:
    return model.startswith(("gpt-image", "chatgpt-image"))


def is_dalle(model: str) -> bool:
    return model.startswith("dall-e")


def image_fields(request: ImageRequest, target: Target) -> dict[str, Any]:
    """The parameters both routes share, as the model takes them."""
    model = target.upstream_model
    fields: dict[str, Any] = {"model": model, "prompt": request.prompt, "n": request.n}
    if request.size:
        fields["size"] = request.size
    if request.quality:
        fields["quality"] = request.quality
    if request.style and model.startswith("dall-e-3"):
        fields["style"] = request.style
    if request.output_format and not is_dalle(model):
        fields["output_format"] = request.output_format
    if not is_gpt_image(model):
        response_format = target.quirks.get("images_response_format", "b64_json")
        if response_format:
            fields["response_format"] = response_format
    for name in PASSED_THROUGH:
        value = getattr(request, name)
        if value is not None:
            fields[name] = value
    fields.update(request.extra)
    if request.user:
        fields["user"] = request.user
    return fields


async def generate_images(request: ImageRequest, target: Target, api: "OpenAICompatibleAdapter") -> ImageResult:
    prepared = httpx.Request(
        "POST", api.url_for(target, "images/generations"),
        headers={"Accept": "application/json", **api.auth_headers(target), "Content-Type": "application/json"},
        content=json.dumps(image_fields(request, target)).encode(),
        extensions={"timeout": timeout_for(target).as_dict()},
    )
    return parse_images(await fetch_json(prepared, target, api.error_from_response), request, target)


async def edit_images(request: ImageRequest, target: Target, api: "OpenAICompatibleAdapter") -> ImageResult:
    if not request.images:
        raise errors.ProviderBadRequest("An image edit needs the image to change.", provider=target.provider)
    fields = image_fields(request, target)
    name = "image[]" if is_gpt_image(target.upstream_model) and len(request.images) > 1 else "image"
    uploads = [(name, (image.filename or f"image-{index}.png", image.content or b"", image.content_type))
               for index, image in enumerate(request.images)]
    if request.mask is not None:
        uploads.append(("mask", (request.mask.filename or "mask.png", request.mask.content or b"",
                                 request.mask.content_type)))
    prepared = httpx.Request(
        "POST", api.url_for(target, "images/edits"), headers={"Accept": "application/json", **api.auth_headers(target)},
        data={key: str(value) for key, value in fields.items()}, files=uploads,
        extensions={"timeout": timeout_for(target).as_dict()},
    )
    return parse_images(await fetch_json(prepared, target, api.error_from_response), request, target)


def variation_fields(request: ImageRequest, target: Target) -> dict[str, str]:
    """What a variation takes: no prompt, quality or style (dall-e-2's one quality is implied)."""
    fields: dict[str, Any] = {"model": target.upstream_model, "n": request.n}
    if request.size:
        fields["size"] = request.size
    response_format = target.quirks.get("images_response_format", "b64_json")
    if response_format:
        fields["response_format"] = response_format
    fields.update(request.extra)
    if request.user:
        fields["user"] = request.user
    return {key: str(value) for key, value in fields.items()}


async def vary_images(request: ImageRequest, target: Target, api: "OpenAICompatibleAdapter") -> ImageResult:
    if not request.images:
        raise errors.ProviderBadRequest("An image variation needs the image to vary.", provider=target.provider)
    image = request.images[0]
    prepared = httpx.Request(
        "POST", api.url_for(target, "images/variations"),
        headers={"Accept": "application/json", **api.auth_headers(target)},
        data=variation_fields(request, target),
        files=[("image", (image.filename or "image.png", image.content or b"", image.content_type))],
        extensions={"timeout": timeout_for(target).as_dict()},
    )
    return parse_images(await fetch_json(prepared, target, api.error_from_response), request, target)


def parse_images(payload: Any, request: ImageRequest, target: Target) -> ImageResult:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list) or not data:
        raise errors.ProviderUnavailable(f"{target.provider} answered without images.", provider=target.provider)
    content_type = FORMATS.get(str(payload.get("output_format") or request.output_format or "png"), "image/png")
    images = []
    for item in data:
        revised = item.get("revised_prompt")
        if item.get("b64_json"):
            try:
                content = base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise errors.ProviderUnavailable(f"{target.provider} sent an image that is not base64.",
                                                 provider=target.provider) from exc
            images.append(GeneratedMedia(content_type=content_type, content=content, revised_prompt=revised))
        elif item.get("url"):
            images.append(GeneratedMedia(content_type=content_type, url=item["url"], revised_prompt=revised))
    if not images:
        raise errors.ProviderUnavailable(f"{target.provider} answered without images.", provider=target.provider)
    size = payload.get("size") or request.size
    quality = payload.get("quality") or request.quality
    usage = Usage(images=len(images), media_detail="/".join(part for part in (size, quality) if part))
    reported = payload.get("usage")
    if isinstance(reported, dict):
        details = reported.get("input_tokens_details") or {}
        usage.input_tokens = int(reported.get("input_tokens") or 0)
        usage.output_tokens = int(reported.get("output_tokens") or 0)
        usage.cached_tokens = int(details.get("cached_tokens") or 0)
    return ImageResult(images=images, usage=usage, upstream_model=target.upstream_model)
