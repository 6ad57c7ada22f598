"""The steps every /v1 endpoint takes before a provider is called: method, key, body, model,
admission. Each raises the envelope's GatewayError (or a billing Refusal) on failure."""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import RequestDataTooBig

from billing import entitlements
from billing.entitlements import Caller
from gateway.api_keys import KeyContext, authenticate, is_last_used_due, touch_last_used
from gateway.proxies import public_base_url
from gateway.v1.errors import GatewayError, bad_request
from gateway.v1.json_body import parse_json_object
from providers import router, tracing
from providers.blocking import run_blocking
from providers.models import FALLBACK_REASONS
from providers.pricing import most_cost
from providers.router import Deployment, ModelInfo
from providers.types import ChatRequest, Usage
from usage.recording import Reservation

CAPABILITY_ENDPOINTS = {
    "chat": "/v1/chat/completions",
    "image": "/v1/images/generations",
    "video": "/v1/videos",
    "speech": "/v1/audio/speech",
    "transcription": "/v1/audio/transcriptions",
    "embedding": "/v1/embeddings",
}


def too_large() -> GatewayError:
    return GatewayError(413, f"The request body is larger than {settings.API_MAX_BODY_BYTES} bytes. Send a "
                        "smaller request (shorter messages, fewer or smaller images).", code="request_too_large")


def read_body(request) -> bytes:
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > settings.API_MAX_BODY_BYTES:
        raise too_large()
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise too_large() from exc
    if len(body) > settings.API_MAX_BODY_BYTES:
        raise too_large()
    return body


def read_json(request) -> dict:
    """The body of a JSON endpoint, size-capped and strictly parsed (gateway.v1.json_body)."""
    return parse_json_object(read_body(request), request.content_type)


def caller_of(key: KeyContext, *, base_url: str) -> Caller:
    return Caller(tenant_id=key.tenant_id, tenant_slug=key.tenant_slug, key_id=key.key_id, key_name=key.key_name,
                  key_allowed_models=key.allowed_models, plan=key.plan, provider_keys=key.provider_keys,
                  base_url=base_url)


PROVIDER_KEY_HEADER = "x-provider-key"
INFERENCE_SCOPE = "inference"


def byok_chain(request, caller: Caller, model: ModelInfo, deployments: list[Deployment]) -> router.Chain | None:
    """With the tenant's own key for the model's provider (the one it is listed under; sent in
    x-provider-key, or stored), the call goes only to that provider's deployments, with that
    key: never on to our keys, and never a key of one provider sent to another."""
    provider = model.provider
    key = request.headers.get(PROVIDER_KEY_HEADER, "").strip() or caller.provider_keys.get(provider)
    if not key:
        return None
    own = [router.with_key(deployment, key) for deployment in deployments if deployment.model.provider == provider]
    return router.Chain(own, frozenset())


async def authenticated_caller(request, *, method: str) -> Caller:
    if request.method != method:
        raise GatewayError(405, f"{request.path} accepts {method}, not {request.method}.", code="method_not_allowed",
                           headers={"Allow": method})
    with tracing.span("authenticate"):
        key = await authenticate(request)
    if INFERENCE_SCOPE not in key.scopes:
        raise GatewayError(403, f"API key '{key.key_name}' may not call /v1: its scopes are "
                           f"{', '.join(key.scopes) or 'none'}, and /v1 needs 'inference'. Use a key with the "
                           "'inference' scope, or create one in the dashboard.", type="permission_error",
                           code="missing_scope")
    if is_last_used_due(key):
        await run_blocking(touch_last_used, key)
    # The tenant and key of the request's log line too (request_log).
    request.caller = caller_of(key, base_url=public_base_url(request))
    return request.caller


async def find_model(public_id: str, *, capability: str) -> tuple[ModelInfo, list[Deployment]]:
    """The model and its deployments, in the order this call should try them."""
    catalog = await router.get_catalog()
    model = catalog.models.get(public_id)
    if model is None:
        raise GatewayError(404, f"The model '{public_id}' does not exist or is not enabled. GET /v1/models lists "
                           "the models your plan includes.", param="model", code="model_not_found")
    if model.capability != capability:
        endpoint = CAPABILITY_ENDPOINTS.get(model.capability, "its own endpoint")
        raise bad_request(f"'{public_id}' is a {model.capability} model; call it at {endpoint}.", param="model",
                          code="wrong_endpoint")
    return model, catalog.deployments_for(public_id)


async def fallback_chain(caller: Caller, chat: ChatRequest, deployments: list[Deployment]) -> router.Chain:
    """The model asked for, then the client's fallbacks (each must exist, be on the plan and
    take the request: else a clear error) or, when it gave none, the operator's (those that
    are not on the plan or cannot take the request are left out)."""
    chain = list(deployments)
    primary = deployments[0].model
    if chat.fallback_models:
        for public_id in chat.fallback_models:
            model, fallbacks = await find_model(public_id, capability="chat")
            entitlements.check_model(caller, model)
            router.check_features(chat, model)
            chain.extend(fallbacks)
        return router.Chain(chain, frozenset(FALLBACK_REASONS))
    if primary.fallbacks:
        catalog = await router.get_catalog()
        needed = router.features_of(chat)
        for public_id in primary.fallbacks:
            model = catalog.models.get(public_id)
            if model is None or model.capability != "chat" or not entitlements.is_model_allowed(caller, model):
                continue
            if needed - model.features:
                continue
            chain.extend(catalog.deployments_for(public_id))
    return router.Chain(chain, primary.fallback_on)


async def admit_request(request, caller: Caller, model: ModelInfo, *, requested_output: int | None,
                        prompt_bytes: int, messages: int = 1, images: int = 0,
                        alternatives: list[ModelInfo] = (), byok: bool = False,
                        search_price: Decimal = Decimal(0)) -> Reservation:
    """Admission, with the key's rate window added to the response headers. ``requested_output``
    is the most output the provider may be sent (ChatRequest.output_limit(), not the client's
    max_tokens: thinking can raise it), None for the model's maximum. With fallbacks, the
    reservation covers the most the priciest model of the chain could cost; with a web search,
    its price too."""
    if requested_output is not None and requested_output > model.max_output_tokens:
        raise bad_request(f"max_tokens is too large: {requested_output}. '{model.public_id}' produces at most "
                          f"{model.max_output_tokens} tokens per answer.", param="max_tokens")
    input_tokens = entitlements.most_input_tokens(prompt_bytes, messages=messages, images=images)
    priciest = max([model, *alternatives], key=lambda m: most_cost(
        m.prices, input_tokens=input_tokens, max_output_tokens=requested_output or m.max_output_tokens))
    with tracing.span("admit", model=priciest.public_id):
        admission = await entitlements.admit(
            caller, priciest, request_id=request.request_id, input_tokens=input_tokens,
            max_output_tokens=requested_output or priciest.max_output_tokens, byok=byok, search_price=search_price,
        )
    request.gateway_headers.update(admission.rate.headers())
    return admission.reservation


async def admit_media_request(request, caller: Caller, model: ModelInfo, *, most: Usage) -> Reservation:
    """Media admission (entitlements.admit_media: ``most`` is what the request can make and cost),
    with the key's rate window added to the response headers."""
    with tracing.span("admit", model=model.public_id):
        admission = await entitlements.admit_media(caller, model, request_id=request.request_id, most=most)
    request.gateway_headers.update(admission.rate.headers())
    return admission.reservation
