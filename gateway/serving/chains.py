"""Which deployments a call may try, in order: the model asked for (it must exist, take this kind
of call and be on the plan), then the client's fallbacks or the operator's, or, with the
tenant's own provider key, only that provider's deployments with that key."""

from billing import entitlements
from billing.entitlements import Caller
from gateway.serving.call import Call
from gateway.serving.errors import GatewayError, bad_request
from providers import router
from providers.models import FALLBACK_REASONS
from providers.router import Deployment, ModelInfo
from providers.types import ChatRequest

CAPABILITY_ENDPOINTS = {
    "chat": "/v1/chat/completions",
    "completion": "/v1/completions",
    "image": "/v1/images/generations",
    "video": "/v1/videos",
    "speech": "/v1/audio/speech",
    "transcription": "/v1/audio/transcriptions",
    "embedding": "/v1/embeddings",
    "rerank": "/v1/rerank",
    "moderation": "/v1/moderations",
}


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


async def capability_of(public_id: str) -> str | None:
    """What kind of model ``public_id`` is (None: no such model; find_model says so)."""
    model = (await router.get_catalog()).models.get(public_id)
    return model.capability if model is not None else None


def byok_chain(call: Call, model: ModelInfo, deployments: list[Deployment]) -> router.Chain | None:
    """With the tenant's own key for the model's provider (the one it is listed under; sent with
    the call, or stored), the call goes only to that provider's deployments, with that key:
    never on to our keys, and never a key of one provider sent to another."""
    provider = model.provider
    key = call.provider_key or call.caller.provider_keys.get(provider)
    if not key:
        return None
    own = [router.with_key(deployment, key) for deployment in deployments if deployment.model.provider == provider]
    return router.Chain(own, frozenset())


async def fallback_chain(caller: Caller, chat: ChatRequest, deployments: list[Deployment]) -> router.Chain:
    """The model asked for, then the client's fallbacks (each must exist, be on the plan and
    take the request: else a clear error) or, when it gave none, the operator's (those that
    are not on the plan or cannot take the request are left out)."""
    chain = list(deployments)
    primary = deployments[0].model
    if chat.fallback_models:
        for public_id in chat.fallback_models:
            model, fallbacks = await find_model(public_id, capability=chat.capability())
            entitlements.check_model(caller, model)
            router.check_features(chat, model)
            chain.extend(fallbacks)
        return router.Chain(chain, frozenset(FALLBACK_REASONS))
    if primary.fallbacks:
        catalog = await router.get_catalog()
        needed = router.features_of(chat)
        for public_id in primary.fallbacks:
            model = catalog.models.get(public_id)
            if model is None or model.capability != chat.capability() or not entitlements.is_model_allowed(caller, model):
                continue
            if needed - model.features:
                continue
            chain.extend(catalog.deployments_for(public_id))
    return router.Chain(chain, primary.fallback_on)
