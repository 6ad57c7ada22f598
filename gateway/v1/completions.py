"""POST /v1/completions (OpenAI's legacy Completions):

    authenticate -> decode (openai_completions) -> a text completion model: as sent, at its
    provider's /completions | a chat model: translated (the prompt as one user message)
    -> gateway.serving.chat.serve_chat -> answer (answers.py) as text_completion objects

Translation only where the operator allows it (LEGACY_COMPLETIONS_AS_CHAT, on by default); off,
the endpoint answers a chat model as OpenAI does: 404, pointing at /v1/chat/completions. Either
way plans, spend reservations, fallbacks, the answer cache and the usage record are chat's.
"""

from django.conf import settings

from gateway.serving.chains import capability_of
from gateway.serving.chat import serve_chat
from gateway.v1 import openai_completions
from gateway.v1.admission import authenticated_call, read_json
from gateway.v1.answers import answer
from gateway.v1.errors import GatewayError, api_view


@api_view
async def completions(request):
    call = await authenticated_call(request, method="POST")
    chat = openai_completions.decode(read_json(request))
    if await capability_of(chat.model) not in (None, "completion"):  # a chat model (or none: serve_chat says so)
        if not settings.LEGACY_COMPLETIONS_AS_CHAT:
            raise GatewayError(404, f"'{chat.model}' is a chat model, and this gateway does not translate legacy "
                               "completions to chat (its operator turned LEGACY_COMPLETIONS_AS_CHAT off). Send the "
                               "prompt as a user message to /v1/chat/completions.", param="model",
                               code="unsupported_endpoint")
        openai_completions.as_chat(chat)
    completion_id = f"cmpl-{call.request_id[4:]}"
    outcome = await serve_chat(call, chat)
    return answer(
        outcome,
        encode_answer=lambda result, model: openai_completions.encode_completion(
            result, completion_id=completion_id, model=model),
        stream_encoder=lambda model, input_estimate: openai_completions.TextCompletionStream(
            completion_id=completion_id, model=model, include_usage=chat.include_usage),
    )
