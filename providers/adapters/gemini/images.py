"""Google's image models on the Gemini API: Imagen (``:predict``) and the Gemini image models
(``generateContent`` answering with image parts). GeminiAdapter's image methods delegate here.

    POST {base_url}/v1beta/models/{imagen-model}:predict
        {"instances": [{"prompt"}], "parameters": {"sampleCount", "aspectRatio", "sampleImageSize",
         "personGeneration", "guidanceScale", "outputOptions": {"mimeType"}}}
        -> {"predictions": [{"bytesBase64Encoded", "mimeType"} | {"raiFilteredReason"}]}
    POST {base_url}/v1beta/models/{gemini-image-model}:generateContent
        {"contents": [{"role": "user", "parts": [{"text"}, {"inlineData"}...]}],
         "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio",
         "imageSize"}, "seed"}}
        -> candidates[0].content.parts with {"inlineData": {"mimeType", "data"}}; usageMetadata
    x-goog-api-key: <key>

- Both size images by aspect ratio (the gateway turns a client's ``size`` into the ratio the model
  declares for it); ``image_size`` ("1K", "2K", "4K") and ``person_generation`` are extras.
- Imagen makes up to four images a call (``sampleCount``) and is priced per image; a prediction
  carrying only ``raiFilteredReason`` was filtered, and a call where all were is ContentFiltered.
  The Gemini API refuses Imagen's negativePrompt and seed, so they are never sent.
- Gemini image models make one image a call, are priced by tokens (usageMetadata, as chat), and
  edit: the images to change go along as ``inlineData`` parts after the prompt. An answer with no
  image part is ContentFiltered when its finish reason says so, else unavailable.
Errors are the Gemini API's, mapped by gemini_errors.error_from_response.
"""

import base64
import binascii
from typing import Any

from providers import errors
from providers.adapters.gemini import answer as gemini_answer
from providers.adapters.gemini import errors as gemini_errors
from providers.adapters.gemini.request import post
from providers.adapters.http_calls import fetch_json
from providers.media_types import GeneratedMedia, ImageRequest, ImageResult
from providers.types import Target, Usage

MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
IMAGEN_EXTRAS = {"image_size": "sampleImageSize", "person_generation": "personGeneration"}


def is_imagen(model: str) -> bool:
    return model.startswith("imagen")


async def generate_images(request: ImageRequest, target: Target) -> ImageResult:
    if is_imagen(target.upstream_model):
        payload = await fetch_json(post(target, "predict", imagen_body(request)), target, gemini_errors.error_from_response)
        return parse_predictions(payload, request, target)
    return await generate_content(request, target)


async def edit_images(request: ImageRequest, target: Target) -> ImageResult:
    if is_imagen(target.upstream_model):
        raise errors.UnsupportedFeature(f"{target.upstream_model} does not edit images on the Gemini API.",
                                        provider=target.provider)
    if not request.images:
        raise errors.ProviderBadRequest("An image edit needs the image to change.", provider=target.provider)
    return await generate_content(request, target)


def imagen_body(request: ImageRequest) -> dict[str, Any]:
    parameters: dict[str, Any] = {"sampleCount": request.n}
    if request.aspect_ratio:
        parameters["aspectRatio"] = request.aspect_ratio
    if request.guidance_scale is not None:
        parameters["guidanceScale"] = request.guidance_scale
    if request.output_format:
        parameters["outputOptions"] = {"mimeType": MIME_TYPES.get(request.output_format, "image/png")}
    for name, value in request.extra.items():
        parameters[IMAGEN_EXTRAS.get(name, name)] = value
    return {"instances": [{"prompt": request.prompt}], "parameters": parameters}


def decoded(data: str, target: Target) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.ProviderUnavailable(f"{target.provider} sent an image that is not base64.",
                                         provider=target.provider) from exc


def parse_predictions(payload: Any, request: ImageRequest, target: Target) -> ImageResult:
    predictions = payload.get("predictions") if isinstance(payload, dict) else None
    images = [GeneratedMedia(content_type=item.get("mimeType") or "image/png",
                             content=decoded(item["bytesBase64Encoded"], target))
              for item in predictions or () if isinstance(item, dict) and item.get("bytesBase64Encoded")]
    if not images:
        if any(isinstance(item, dict) and item.get("raiFilteredReason") for item in predictions or ()):
            raise errors.ContentFiltered(f"{target.provider} filtered every image for its content policy; change "
                                         "the prompt.", provider=target.provider)
        raise errors.ProviderUnavailable(f"{target.provider} answered without images.", provider=target.provider)
    usage = Usage(images=len(images), media_detail=request.size or request.aspect_ratio or "")
    return ImageResult(images=images, usage=usage, upstream_model=target.upstream_model)


async def generate_content(request: ImageRequest, target: Target) -> ImageResult:
    if request.n != 1:
        raise errors.UnsupportedFeature(f"{target.upstream_model} makes one image per request, not {request.n}.",
                                        provider=target.provider)
    parts: list[dict[str, Any]] = [{"text": request.prompt}]
    for image in request.images:
        parts.append({"inlineData": {"mimeType": image.content_type,
                                     "data": base64.b64encode(image.content or b"").decode()}})
    image_config: dict[str, Any] = {}
    if request.aspect_ratio:
        image_config["aspectRatio"] = request.aspect_ratio
    if request.extra.get("image_size"):
        image_config["imageSize"] = request.extra["image_size"]
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if image_config:
        config["imageConfig"] = image_config
    if request.seed is not None:
        config["seed"] = request.seed
    body = {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
    payload = await fetch_json(post(target, "generateContent", body), target, gemini_errors.error_from_response)
    return parse_content(payload, request, target)


def parse_content(payload: Any, request: ImageRequest, target: Target) -> ImageResult:
    candidates = payload.get("candidates") if isinstance(payload, dict) else None
    candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    parts = (candidate.get("content") or {}).get("parts") or ()
    images, text = [], []
    for part in parts:
        if not isinstance(part, dict) or part.get("thought"):
            continue  # thought images are drafts, not the answer
        inline = part.get("inlineData")
        if isinstance(inline, dict) and inline.get("data"):
            images.append(GeneratedMedia(content_type=inline.get("mimeType") or "image/png",
                                         content=decoded(inline["data"], target)))
        elif part.get("text"):
            text.append(part["text"])
    blocked = (payload.get("promptFeedback") or {}).get("blockReason") if isinstance(payload, dict) else None
    if not images:
        if blocked or candidate.get("finishReason") in gemini_answer.FILTERED or candidate.get("finishReason") == "NO_IMAGE":
            raise errors.ContentFiltered(f"{target.provider} made no image ({blocked or candidate.get('finishReason')})"
                                         f"{': ' + ' '.join(text) if text else ''}. Change the prompt.",
                                         provider=target.provider)
        raise errors.ProviderUnavailable(f"{target.provider} answered without an image.", provider=target.provider)
    if text:
        images[0].revised_prompt = " ".join(text)  # what the model said alongside, as OpenAI's revised_prompt
    usage = gemini_answer.parse_usage(payload) or Usage()
    usage.images = len(images)
    usage.media_detail = "/".join(part for part in (request.size or request.aspect_ratio,
                                                    request.extra.get("image_size")) if part)
    return ImageResult(images=images, usage=usage,
                       upstream_model=payload.get("modelVersion") or target.upstream_model)
