"""POST /v1/chat/completions:

    authenticate -> decode (openai_chat) -> gateway.serving.chat.serve_chat -> answer (answers.py)

``image/<model>`` and ``video/<model>`` are media models in chat (media_chat.py), ``admin/...``
the tenant commands (admin_chat.py). Response headers come from the call's outcome
(gateway.v1.headers, in api_view).
"""

from gateway.serving.chat import serve_chat
from gateway.v1 import admin_chat, media_chat, openai_chat, openai_chat_answer
from gateway.v1.admission import authenticated_call, read_json
from gateway.v1.answers import answer
from gateway.v1.errors import api_view


@api_view
async def chat_completions(request):
    call = await authenticated_call(request, method="POST")
    chat = openai_chat.decode(read_json(request))
    completion_id = f"chatcmpl-{call.request_id[4:]}"
    # image/<model>: a media model in chat; admin/magic: the tenant's commands
    if serve_other := media_chat.media_route(chat.model) or admin_chat.admin_route(chat.model):
        return await serve_other(request, call, chat, completion_id=completion_id)
    outcome = await serve_chat(call, chat)
    return answer(
        outcome,
        encode_answer=lambda result, model: openai_chat_answer.encode_completion(
            result, completion_id=completion_id, model=model, legacy_functions=chat.legacy_functions,
            tool_runs=chat.tool_runs),
        stream_encoder=lambda model, input_estimate: openai_chat_answer.OpenAIStream(
            openai_chat_answer.ChunkEncoder(completion_id=completion_id, model=model,
                                            include_usage=chat.include_usage,
                                            legacy_functions=chat.legacy_functions)),
    )


