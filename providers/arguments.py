"""Sampling and output arguments only some providers take, and which deployments honour them.

The rule: a decoder puts such an argument on the ChatRequest only when its value is not neutral
(a penalty of 0, logprobs false, verbosity "medium" change nothing and are dropped there). What
is left must be honoured or refused: each adapter declares the arguments it sends
(Adapter.SUPPORTED_ARGUMENTS, narrowed per provider by Adapter.supported_arguments), and
``honouring`` keeps the deployments of a chain that send every one the request sets. When the
model asked for has none left, the request is refused with a 400 naming the model and the
argument, before any reservation and any provider call; fallbacks that cannot are skipped.

    ARGUMENTS                      the names, as clients send them and as ChatRequest fields
    arguments_of(request)          the ones a request sets
    honouring(request, model, chain)   the chain less what cannot honour them, or UnsupportedArgument
"""

import json

from providers import errors
from providers.catalog_snapshot import Deployment, ModelInfo
from providers.router import Chain
from providers.types import ChatRequest

# Each name -> its neutral value, as the client would send it (said in the refusal).
ARGUMENTS = {
    "frequency_penalty": "0",
    "presence_penalty": "0",
    "logprobs": "false",
    "top_logprobs": "0",
    "logit_bias": "{}",
    "verbosity": '"medium"',
    "modalities": '["text"]',
    "prediction": "null",
}


def arguments_of(request: ChatRequest) -> list[str]:
    """The arguments the request sets to a value that is not neutral."""
    return [name for name in ARGUMENTS if getattr(request, name) not in (None, False)]


def missing_arguments(request: ChatRequest, deployment: Deployment, asked: list[str]) -> list[str]:
    supported = deployment.adapter.supported_arguments(deployment.targets[0])
    return [name for name in asked if name not in supported]


def refusal(request: ChatRequest, model: ModelInfo, missing: list[str]) -> errors.UnsupportedArgument:
    name = missing[0]
    value = json.dumps(getattr(request, name))[:80]
    others = f" (nor {', '.join(missing[1:])})" if missing[1:] else ""
    return errors.UnsupportedArgument(
        f"'{model.public_id}' (provider {model.provider}) cannot honour '{name}': {value}{others}. Leave it out or "
        f"send its neutral value ({ARGUMENTS[name]}), or pick a model whose provider takes it (see docs/REFERENCE.md, "
        "'Arguments').", param=name, provider=model.provider)


def honouring(request: ChatRequest, model: ModelInfo, chain: Chain) -> Chain:
    """``chain`` without the deployments that cannot send every argument the request sets. The
    model asked for (``model``) must keep one: else UnsupportedArgument, naming it and the argument."""
    asked = arguments_of(request)
    if not asked:
        return chain
    kept = [deployment for deployment in chain.deployments if not missing_arguments(request, deployment, asked)]
    if not any(deployment.model.public_id == model.public_id for deployment in kept):
        own = next((d for d in chain.deployments if d.model.public_id == model.public_id), chain.deployments[0])
        raise refusal(request, model, missing_arguments(request, own, asked))
    return Chain(kept, chain.fallback_on)
