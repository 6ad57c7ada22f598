"""POST /v1/images/generations and /v1/images/edits: OpenAI's Images API for every image model.

key -> decode (JSON; multipart for edits) -> model -> plan -> parameters against the model's
media_options (400 listing the allowed values) -> admit_media (the most the request can make and
cost, against the spend cap and the monthly image limit) -> router -> store the images -> answer
-> settle the images made (none, and nothing to pay, when the call failed).

Request: OpenAI's shape (model, prompt, n, size, quality, style, response_format, output_format,
user) plus the provider parameters a model declares in media_options.extras (seed,
negative_prompt, guidance_scale, steps, image_size, background, ...); ``num_images`` is n by
fal's name, ``aspect_ratio`` picks a size by its ratio where the model sizes by ratio.
``response_format: url`` answers our own signed URL to the stored file (media.files), never the
provider's; ``b64_json`` answers the bytes inline. Either way the file is kept.
Models: image models, and chat models that draw (feature image_output, e.g. Gemini's image models).
"""

import base64
import math
import time
from dataclasses import dataclass

from django.http import JsonResponse

from billing import entitlements
from gateway.serving.call import Call
from gateway.serving.chains import find_model
from gateway.serving.media import media_meter
from gateway.serving.meter import Meter
from gateway.v1.admission import authenticated_call, read_body, read_json
from gateway.v1.errors import api_view, bad_request
from gateway.v1.media import (
    allowed_values,
    check_choice,
    check_count,
    check_extras,
    check_prompt,
    default_choice,
    media_url,
    store_generated,
    text_field,
)
from media.models import MediaFile
from providers import router
from providers.media_types import ImageRequest, ImageResult, MediaInput
from providers.pricing import MILLION, unit_price
from providers.router import Deployment, ModelInfo
from providers.types import Usage

OPENAI_FIELDS = {"model", "prompt", "n", "size", "quality", "style", "response_format", "output_format", "user",
                 "num_images", "aspect_ratio"}
# Provider parameters with a field of their own in ImageRequest (the rest go in its ``extra``).
NAMED_EXTRAS = {"seed": int, "negative_prompt": str, "guidance_scale": float, "steps": int}
RESPONSE_FORMATS = ("url", "b64_json")
MAX_INPUT_IMAGES = 1  # unless media_options.max_input_images says more


@api_view
async def generations(request):
    call = await authenticated_call(request, method="POST")
    fields = read_json(request)
    return await serve_images(request, call, fields, [], None)


@api_view
async def edits(request):
    call = await authenticated_call(request, method="POST")
    read_body(request)  # the size limit, before parsing
    if not request.content_type.startswith("multipart/form-data"):
        raise bad_request("POST /v1/images/edits takes multipart/form-data: the image(s) as 'image' (or 'image[]'), "
                          "an optional 'mask', and the other fields as form fields.", code="invalid_content_type")
    fields = {name: request.POST.get(name) for name in request.POST}
    uploads = request.FILES.getlist("image") + request.FILES.getlist("image[]")
    if not uploads:
        raise bad_request("Send the image to edit as the multipart file 'image' (or several as 'image[]').",
                          param="image", code="missing_required_parameter")
    images = [media_input(upload) for upload in uploads]
    mask = media_input(request.FILES["mask"]) if "mask" in request.FILES else None
    return await serve_images(request, call, fields, images, mask)


def media_input(upload) -> MediaInput:
    return MediaInput(content=upload.read(), content_type=upload.content_type or "application/octet-stream",
                      filename=upload.name or "")


def number(fields: dict, name: str, kind: type):
    """A numeric field (multipart sends text), or None when absent."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise bad_request(f"{name} must be a number, not {value!r}.", param=name)
    try:
        converted = kind(value)
        if kind is float and not math.isfinite(converted):
            raise ValueError(value)
    except (TypeError, ValueError, OverflowError):
        raise bad_request(f"{name} must be {'an integer' if kind is int else 'a number'}, not {value!r}.",
                          param=name) from None
    if kind is int and isinstance(value, float) and value != converted:
        raise bad_request(f"{name} must be an integer, not {value!r}.", param=name)
    return converted


async def find_image_model(public_id) -> tuple[ModelInfo, list[Deployment]]:
    """An image model, or a chat model that draws (feature image_output)."""
    if not isinstance(public_id, str) or not public_id:
        raise bad_request("model is required: name an image model, e.g. 'openai/gpt-image-1' (GET /v1/models lists "
                          "the models your plan includes).", param="model", code="missing_required_parameter")
    catalog = await router.get_catalog()
    model = catalog.models.get(public_id)
    if model is not None and model.capability == "chat" and "image_output" in (model.features or ()):
        return model, catalog.deployments_for(public_id)
    return await find_model(public_id, capability="image")


def check_model_on_plan(caller, model: ModelInfo) -> None:
    entitlements.check_model(caller, model)
    if model.capability != "image" and not caller.plan.allows_capability("image"):
        raise entitlements.Refusal(403, f"image models are not on plan {caller.plan.name}; "
                                   f"{entitlements.upgrade_hint(caller)}.", type="permission_error",
                                   code="capability_not_on_plan")


def resolve_size(model: ModelInfo, size, aspect_ratio) -> tuple[str | None, str | None]:
    """The size and aspect ratio to ask for. A model that sizes by ratio declares sizes as
    {size: ratio}: either names the other."""
    sizes = model.media_options.get("sizes")
    if size is not None and not isinstance(size, str):
        raise bad_request(f"size must be a string such as '1024x1024', not {size!r}.", param="size")
    if isinstance(sizes, dict):
        if size is None and aspect_ratio is not None:
            ratios = list(dict.fromkeys(sizes.values()))
            if aspect_ratio not in ratios:
                raise bad_request(f"aspect_ratio {aspect_ratio!r} is not available for '{model.public_id}'; use one "
                                  f"of: {', '.join(ratios)}.", param="aspect_ratio")
            size = next(key for key, ratio in sizes.items() if ratio == aspect_ratio)
        size = size or default_choice(model, "sizes", "default_size")
        check_choice(model, "sizes", size, param="size")
        if aspect_ratio is not None and sizes[size] != aspect_ratio:
            raise bad_request(f"size {size} is {sizes[size]}, not aspect_ratio {aspect_ratio}; send one of them.",
                              param="aspect_ratio")
        return size, sizes[size]
    if aspect_ratio is not None:
        check_choice(model, "aspect_ratios", aspect_ratio, param="aspect_ratio")
        if allowed_values(model, "aspect_ratios") is None and sizes is not None:
            raise bad_request(f"'{model.public_id}' takes a size, not an aspect_ratio; use one of: "
                              f"{', '.join(sizes)}.", param="aspect_ratio")
    size = size or default_choice(model, "sizes", "default_size")
    check_choice(model, "sizes", size, param="size")
    return size, aspect_ratio


def check_declared(model: ModelInfo, option: str, value, *, param: str):
    """qualities, styles and formats are model-specific words: a model that declares none takes none."""
    if value is not None and allowed_values(model, option) is None:
        raise bad_request(f"'{model.public_id}' does not take {param}; leave it out.", param=param)
    check_choice(model, option, value, param=param)


def decode_image_request(model: ModelInfo, fields: dict, images: list[MediaInput],
                         mask: MediaInput | None) -> tuple[ImageRequest, str]:
    """The canonical request, checked against what the model accepts, and the response format."""
    options = model.media_options
    prompt = check_prompt(model, fields.get("prompt"))
    n = number(fields, "n", int)
    num_images = number(fields, "num_images", int)
    if n is not None and num_images is not None and n != num_images:
        raise bad_request("Send n or num_images, not both.", param="num_images")
    n = n or num_images or 1
    check_count(model, n)
    response_format = text_field(fields, "response_format") or "url"
    if response_format not in RESPONSE_FORMATS:
        raise bad_request(f"response_format {response_format!r} is not available; use one of: url, b64_json.",
                          param="response_format")
    size, aspect_ratio = resolve_size(model, fields.get("size"), fields.get("aspect_ratio"))
    quality = fields.get("quality")
    check_declared(model, "qualities", quality, param="quality")
    style = fields.get("style")
    check_declared(model, "styles", style, param="style")
    output_format = fields.get("output_format")
    check_declared(model, "formats", output_format, param="output_format")
    extras = {name: value for name, value in fields.items() if name not in OPENAI_FIELDS and value is not None}
    check_extras(model, extras)
    if "image_size" in extras:
        check_choice(model, "image_sizes", extras["image_size"], param="image_size")
    named = {name: number(extras, name, kind) if kind is not str else extras[name]
             for name, kind in NAMED_EXTRAS.items() if name in extras}
    if images:
        if options.get("edits") is False:
            raise bad_request(f"'{model.public_id}' does not edit images; use one that does (GET /v1/models: image "
                              "models whose media_options do not say edits: false).", param="model",
                              code="unsupported_operation")
        most_inputs = int(options.get("max_input_images", MAX_INPUT_IMAGES))
        if len(images) > most_inputs:
            raise bad_request(f"'{model.public_id}' edits at most {most_inputs} image(s) at once, not {len(images)}.",
                              param="image")
    image_request = ImageRequest(
        model=model.public_id, prompt=prompt, n=n, size=size,
        quality=quality or default_choice(model, "qualities", "default_quality"),
        style=style, output_format=output_format, aspect_ratio=aspect_ratio, **named,
        extra={name: value for name, value in extras.items() if name not in NAMED_EXTRAS},
        images=images, mask=mask, user=fields.get("user") if isinstance(fields.get("user"), str) else None,
    )
    return image_request, response_format


def tokens_per_image(model: ModelInfo, detail: str) -> int:
    table = model.media_options.get("image_tokens") or {}
    for key in (detail, *detail.split("/"), "*"):
        if key and key in table:
            return int(table[key])
    return 0


def most_usage(model: ModelInfo, image_request: ImageRequest) -> Usage:
    """The most the request can make and cost: n images at the priciest detail it may turn out to
    be ('auto' size or quality: any of the model's), and for token-priced models their tokens."""
    def choices(option: str, value):
        if value not in (None, "auto"):
            return [value]
        return [v for v in allowed_values(model, option) or [None] if v != "auto"] or [None]

    prices = model.prices
    candidates = []
    for size in choices("sizes", image_request.size):
        for quality in choices("qualities", image_request.quality):
            detail = "/".join(part for part in (size, quality, image_request.extra.get("image_size")) if part)
            tokens = tokens_per_image(model, detail)
            cost = unit_price(prices.media.image, detail, prices.media.per_image) + tokens * prices.output / MILLION
            candidates.append((cost, detail, tokens))
    _, detail, tokens = max(candidates)
    inputs = len(image_request.prompt.encode()) + len(image_request.images) * int(
        model.media_options.get("input_image_tokens", 0))
    return Usage(images=image_request.n, media_detail=detail, input_tokens=inputs,
                 output_tokens=image_request.n * tokens)


@dataclass(slots=True)
class ImageJob:
    """An admitted image request, ready to run: what to ask whom, and the meter that settles it."""

    request: ImageRequest
    response_format: str
    operation: str  # "generate_images", "edit_images" or "vary_images" (image_variations.py)
    model: ModelInfo
    chain: router.Chain
    meter: Meter
    tenant_id: int


@dataclass(slots=True)
class MadeImages:
    result: ImageResult
    files: list[MediaFile]


async def admit_images(call: Call, fields: dict, images: list[MediaInput], mask: MediaInput | None) -> ImageJob:
    """Everything before the provider call: model, plan, parameters, admission (a reservation
    that only the job's settlement gives back)."""
    operation = "edit_images" if images else "generate_images"
    model, deployments = await find_image_model(fields.get("model"))
    check_model_on_plan(call.caller, model)
    if not deployments[0].adapter.supports(operation):
        raise bad_request(f"'{model.public_id}' (provider {model.provider}) does not "
                          f"{'edit' if images else 'generate'} images here.", param="model",
                          code="unsupported_operation")
    image_request, response_format = decode_image_request(model, fields, images, mask)
    call.attribute(image_request.user)
    meter = await media_meter(call, model, most=most_usage(model, image_request))
    return ImageJob(request=image_request, response_format=response_format, operation=operation, model=model,
                    chain=router.Chain(deployments, model.fallback_on), meter=meter, tenant_id=call.caller.tenant_id)


async def run_images(job: ImageJob) -> MadeImages:
    """The provider call (retries, other deployments) and the files kept, inside the job's meter
    scope (``async with job.meter``): the usage to settle is set only once the files are kept,
    so when it fails, nothing is made and nothing is paid."""
    meter = job.meter
    result = await router.call_chain(job.chain, lambda adapter, target: make_images(
        adapter, target, job.request, job.operation), meter.trace)
    files = await store_generated(meter.reservation.request_id, tenant_id=job.tenant_id, kind="image",
                                  media=result.images)
    meter.settlement.usage = result.usage
    meter.settlement.upstream_model = result.upstream_model
    return MadeImages(result, files)


async def serve_images(request, call: Call, fields: dict, images: list[MediaInput], mask: MediaInput | None):
    job = await admit_images(call, fields, images, mask)
    async with job.meter:
        made = await run_images(job)
    return JsonResponse(encode_images(request, made, job.response_format))


async def make_images(adapter, target, image_request: ImageRequest, operation: str) -> ImageResult:
    """One attempt: the images, with their bytes (a provider URL is fetched at once, with the
    same target: some need its key, and all expire)."""
    result = await getattr(adapter, operation)(image_request, target)
    for image in result.images:
        image.content = await adapter.fetch_media(image, target)
    result.usage.images = result.usage.images or len(result.images)
    return result


def encode_images(request, made: MadeImages, response_format: str) -> dict:
    data = []
    result = made.result
    for image, file in zip(result.images, made.files, strict=True):
        entry = {"url": media_url(request, file)} if response_format == "url" else {
            "b64_json": base64.b64encode(image.content or b"").decode()}
        if image.revised_prompt:
            entry["revised_prompt"] = image.revised_prompt
        data.append(entry)
    body: dict = {"created": int(time.time()), "data": data}
    usage = result.usage
    if usage.input_tokens or usage.output_tokens:
        body["usage"] = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                         "total_tokens": usage.input_tokens + usage.output_tokens}
    return body
