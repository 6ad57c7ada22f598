"""POST /v1/images/variations: OpenAI's variations of an uploaded image, for the image models whose
catalog row declares media_options ``variations: true`` (dall-e-2) on a provider whose adapter makes
them (``vary_images``); any other model is a 400 before admission.

    key -> multipart (image, model, n, size, response_format, user) -> model -> plan -> declared,
    the adapter can -> n and size against media_options -> admit_media (n images at the size's
    price, against the spend cap and the monthly image limit) -> router -> store the images ->
    answer -> settle the images made (none, and nothing to pay, when the call failed)

Billed and answered as a generation (gateway.v1.images): per image by size, our signed URL or
b64_json. A variation takes no prompt: changing an image as a prompt says is /v1/images/edits.
"""

from django.http import JsonResponse

from gateway.serving.call import Call
from gateway.serving.media import media_meter
from gateway.v1.admission import authenticated_call, read_body
from gateway.v1.errors import api_view, bad_request
from gateway.v1.images import (
    RESPONSE_FORMATS,
    ImageJob,
    check_model_on_plan,
    encode_images,
    find_image_model,
    media_input,
    most_usage,
    number,
    resolve_size,
    run_images,
)
from gateway.v1.media import check_count, check_extras, default_choice, text_field
from providers import router
from providers.media_types import ImageRequest, MediaInput
from providers.router import ModelInfo

FIELDS = {"model", "n", "size", "response_format", "user"}
OPERATION = "vary_images"


@api_view
async def variations(request):
    call = await authenticated_call(request, method="POST")
    fields, image = read_image_form(request)
    job = await admit_variation(call, fields, image)
    async with job.meter:
        made = await run_images(job)
    return JsonResponse(encode_images(request, made, job.response_format))


def read_image_form(request) -> tuple[dict, MediaInput]:
    read_body(request)  # the size limit, before parsing
    if not request.content_type.startswith("multipart/form-data"):
        raise bad_request("POST /v1/images/variations takes multipart/form-data: the image as the file 'image', "
                          "the other fields as form fields.", code="invalid_content_type")
    if "image" not in request.FILES:
        raise bad_request("Send the image to vary as the multipart file 'image'.", param="image",
                          code="missing_required_parameter")
    image = media_input(request.FILES["image"])
    if not image.content:
        raise bad_request("The file 'image' is empty; send the image to vary (a square PNG).", param="image")
    return {name: request.POST.get(name) for name in request.POST}, image


async def admit_variation(call: Call, fields: dict, image: MediaInput) -> ImageJob:
    """Model, plan, what it declares and its adapters, parameters, admission."""
    model, deployments = await find_image_model(fields.get("model"))
    check_model_on_plan(call.caller, model)
    if not model.media_options.get("variations"):
        raise bad_request(f"'{model.public_id}' makes no variations of an image; use a model that does (e.g. "
                          "'openai/dall-e-2'), or /v1/images/edits with a prompt saying what to change.",
                          param="model", code="unsupported_operation")
    able = [deployment for deployment in deployments if deployment.adapter.supports(OPERATION)]
    if not able:
        raise bad_request(f"'{model.public_id}' (provider {model.provider}) does not make image variations here.",
                          param="model", code="unsupported_operation")
    image_request, response_format = decode_variation(model, fields, image)
    call.attribute(image_request.user)
    meter = await media_meter(call, model, most=most_usage(model, image_request))
    return ImageJob(request=image_request, response_format=response_format, operation=OPERATION, model=model,
                    chain=router.Chain(able, model.fallback_on), meter=meter, tenant_id=call.caller.tenant_id)


def decode_variation(model: ModelInfo, fields: dict, image: MediaInput) -> tuple[ImageRequest, str]:
    """The canonical request (no prompt; the model's one quality, for the price), and the response format."""
    if fields.get("prompt"):
        raise bad_request("A variation takes no prompt. To change the image as a prompt says, use /v1/images/edits.",
                          param="prompt")
    extras = {name: value for name, value in fields.items() if name not in FIELDS and value}
    check_extras(model, extras)
    n = number(fields, "n", int)
    n = 1 if n is None else n
    check_count(model, n)
    response_format = text_field(fields, "response_format") or "url"
    if response_format not in RESPONSE_FORMATS:
        raise bad_request(f"response_format {response_format!r} is not available; use one of: url, b64_json.",
                          param="response_format")
    size, _ = resolve_size(model, text_field(fields, "size"), None)
    return ImageRequest(model=model.public_id, prompt="", n=n, size=size,
                        quality=default_choice(model, "qualities", "default_quality"),
                        extra=extras,
                        images=[image], user=text_field(fields, "user")), response_format
