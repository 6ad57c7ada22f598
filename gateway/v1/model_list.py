"""GET /v1/models and /v1/models/{id}: the models this key's plan allows, with prices."""

from django.http import JsonResponse

from billing.entitlements import is_model_allowed
from gateway.v1.admission import authenticated_call
from gateway.v1.errors import GatewayError, api_view, bad_request
from providers import router
from providers.models import Capability
from providers.router import ModelInfo


def encode_model(model: ModelInfo) -> dict:
    prices = model.prices
    return {
        "id": model.public_id,
        "object": "model",
        "created": model.created,
        "owned_by": model.provider,
        "capability": model.capability,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        # Chat features (providers.router.model_features): a media model has none.
        "features": sorted(model.features),
        # Strings, not floats: these are exact USD amounts per million tokens.
        "pricing": {
            "currency": "USD",
            "unit": "per_million_tokens",
            "input": str(prices.input),
            "output": str(prices.output),
            "cached_input": str(prices.cached_input),
            **media_pricing(model),
        },
        # What a media model accepts (sizes, n, qualities, durations, ...): anything else is a 400.
        **({"media_options": model.media_options} if model.media_options else {}),
    }


def media_pricing(model: ModelInfo) -> dict:
    """Per-unit media prices, where the model has them (USD strings)."""
    media = model.prices.media
    priced = {"per_image": media.per_image, "per_video_second": media.per_video_second,
              "per_million_characters": media.per_million_characters, "per_audio_minute": media.per_audio_minute}
    encoded = {name: str(price) for name, price in priced.items() if price}
    if media.image:
        encoded["image"] = {detail: str(price) for detail, price in media.image}
    if media.video_second:
        encoded["video_second"] = {detail: str(price) for detail, price in media.video_second}
    return encoded


@api_view
async def list_models(request):
    """GET (and POST, which some clients send) /v1/models[?capability=embedding]: the models the
    key may call, of one capability when asked."""
    caller = (await authenticated_call(request, method="POST" if request.method == "POST" else "GET")).caller
    capability = request.GET.get("capability")
    if capability and capability not in Capability.values:
        raise bad_request(f"There is no capability {capability[:40]!r}; ask for one of {', '.join(Capability.values)}.",
                          param="capability")
    catalog = await router.get_catalog()
    data = [encode_model(m) for m in catalog.models.values()
            if is_model_allowed(caller, m) and capability in (None, "", m.capability)]
    return JsonResponse({"object": "list", "data": sorted(data, key=lambda m: m["id"])})


@api_view
async def retrieve_model(request, model_id: str):
    caller = (await authenticated_call(request, method="GET")).caller
    catalog = await router.get_catalog()
    model = catalog.models.get(model_id)
    if model is None or not is_model_allowed(caller, model):
        raise GatewayError(404, f"The model '{model_id}' does not exist or is not on your plan. GET /v1/models "
                           "lists the models your plan includes.", param="model", code="model_not_found")
    return JsonResponse(encode_model(model))


@api_view
async def unknown_endpoint(request, rest: str = ""):
    raise GatewayError(404, f"Unknown endpoint {request.method} {request.path}. See the README for the /v1 "
                       "endpoints this gateway serves.", code="unknown_url")
