"""POST /v1/messages: Anthropic's Messages API in front of every chat model of the catalog.

The same path as /v1/chat/completions (gateway.serving.chat.serve_chat: plan, admission, router,
settlement); only the protocol differs (gateway.v1.anthropic_messages), errors included.

POST /v1/messages/count_tokens answers ``{"input_tokens": N}`` for the same request shape, free
(no reservation, no usage record) but authenticated, on the plan's request rate and for models
on the plan only. A model whose serving deployment can count (Claude on the native Anthropic
API) gets the provider's own count; any other an estimate (providers.tokenizer), and so does
one whose provider fails to count (any provider error, logged). The header
``x-tollgate-token-count`` says which: ``provider`` or ``estimate``.
"""

from django.http import JsonResponse

from billing import entitlements, rate_limits
from gateway.serving.chains import byok_chain, find_model
from gateway.serving.chat import serve_chat
from gateway.serving.errors import log_provider_error
from gateway.v1 import anthropic_answer, anthropic_messages
from gateway.v1.admission import authenticated_call, read_json
from gateway.v1.answers import answer
from gateway.v1.errors import api_view
from providers.blocking import run_blocking
from providers.errors import ProviderError
from providers.tokenizer import estimate_input_tokens


@api_view(envelope=anthropic_messages.envelope)
async def create_message(request):
    call = await authenticated_call(request, method="POST")
    chat = anthropic_messages.decode(read_json(request))
    # Beta flags (and the SDK's ?beta=true, which changes nothing here) are bookkeeping: the
    # request carries them to the Anthropic adapter, which forwards those that matter.
    chat.anthropic_betas = anthropic_messages.decode_betas(request.headers.get("anthropic-beta"))
    message_id = f"msg_{call.request_id[4:]}"
    outcome = await serve_chat(call, chat)
    return answer(
        outcome,
        encode_answer=lambda result, model: anthropic_answer.encode_message(
            result, message_id=message_id, model=model),
        stream_encoder=lambda model, input_estimate: anthropic_answer.StreamEncoder(
            message_id=message_id, model=model, input_estimate=input_estimate),
    )


@api_view(envelope=anthropic_messages.envelope)
async def count_tokens(request):
    call = await authenticated_call(request, method="POST")
    chat = anthropic_messages.decode_count(read_json(request))
    model, deployments = await find_model(chat.model, capability="chat")
    entitlements.check_model(call.caller, model)
    call.outcome.rate = await rate_limits.check_requests(call.caller)
    # The deployment that would serve the request counts, with the key it would be called with.
    own = byok_chain(call, model, deployments)
    deployment = own.deployments[0] if own else deployments[0]
    try:
        counted = await deployment.adapter.count_tokens(chat, deployment.next_target())
    except ProviderError as exc:
        # A count is advice, not a call: whatever failed (our credential included, which the
        # operator must fix), the client gets the estimate and the operator the log line.
        log_provider_error(exc, request.request_id)
        counted = None
    source = "estimate" if counted is None else "provider"
    if counted is None:
        counted = await run_blocking(estimate_input_tokens, chat)
    return JsonResponse({"input_tokens": counted}, headers={"x-tollgate-token-count": source,
                                                            "x-tollgate-provider": deployment.model.provider})
