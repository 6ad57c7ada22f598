"""POST /v1/moderations in OpenAI's shape:

    {"model"?: "openai/omni-moderation-latest", "input": "text" | ["text", ...] |
     [{"type": "text", "text"} | {"type": "image_url", "image_url": {"url"}}, ...]}
    -> {"id", "model", "results": [{"flagged", "categories", "category_scores",
        "category_applied_input_types"}]}

Without ``model``, MODERATION_DEFAULT_MODEL. Priced as the operator sets (free by default) and
recorded in usage like any call.
"""

from typing import Any

from django.conf import settings
from django.http import JsonResponse

from gateway.serving.retrieval import serve_moderation
from gateway.v1.admission import authenticated_call, read_json
from gateway.v1.errors import api_view, bad_request
from gateway.v1.json_body import decoder, expect
from gateway.v1.openai_chat import refuse_unknown
from providers.embedding_types import ModerationRequest, ModerationResult
from providers.types import ImagePart, TextPart

FIELDS = {"model", "input"}
MAX_INPUTS = 32


@api_view
async def moderations(request):
    call = await authenticated_call(request, method="POST")
    moderation = decode(read_json(request))
    outcome = await serve_moderation(call, moderation)
    return JsonResponse(encode(outcome.result, request_id=call.request_id, model=moderation.model))


@decoder
def decode(payload: dict[str, Any]) -> ModerationRequest:
    refuse_unknown(payload, FIELDS)
    model = payload.get("model") or settings.MODERATION_DEFAULT_MODEL
    expect(model, str, "model", "a model id")
    value = payload.get("input")
    if value is None:
        raise bad_request("'input' is required: the text (or texts, or text and image parts) to classify.",
                          param="input", code="missing_required_parameter")
    if isinstance(value, str):
        value = [value]
    expect(value, list, "input", "a string or an array")
    if not value or len(value) > MAX_INPUTS:
        raise bad_request(f"'input' must hold 1 to {MAX_INPUTS} items.", param="input")
    if all(isinstance(item, str) for item in value):
        return ModerationRequest(model=model, inputs=value)
    return ModerationRequest(model=model, inputs=[decode_part(item, index) for index, item in enumerate(value)])


def decode_part(item: Any, index: int) -> TextPart | ImagePart:
    where = f"input[{index}]"
    expect(item, dict, where, "an object with a type of 'text' or 'image_url'")
    if item.get("type") == "text":
        return TextPart(text=expect(item.get("text"), str, f"{where}.text", "a string"))
    if item.get("type") == "image_url":
        image = expect(item.get("image_url"), dict, f"{where}.image_url", "an object with a url")
        return ImagePart(url=expect(image.get("url"), str, f"{where}.image_url.url", "a URL"))
    raise bad_request(f"'{where}.type' must be 'text' or 'image_url'.", param="input")


def encode(result: ModerationResult, *, request_id: str, model: str) -> dict[str, Any]:
    return {"id": result.id or f"modr-{request_id[4:]}", "model": model, "results": [
        {"flagged": verdict.flagged, "categories": verdict.categories, "category_scores": verdict.category_scores,
         "category_applied_input_types": verdict.category_applied_input_types} for verdict in result.results]}
