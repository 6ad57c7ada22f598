"""POST /v1/messages: Anthropic's Messages API in front of every chat model of the catalog.

The same path as /v1/chat/completions (gateway.v1.chat.serve_chat: plan, admission, router,
settlement); only the protocol differs (gateway.v1.anthropic_messages), errors included.
"""

import time

from gateway.v1 import anthropic_messages
from gateway.v1.admission import authenticated_caller, read_body
from gateway.v1.chat import serve_chat
from gateway.v1.errors import api_view


@api_view(envelope=anthropic_messages.envelope)
async def create_message(request):
    started = time.monotonic()
    caller = await authenticated_caller(request, method="POST")
    chat = anthropic_messages.decode(read_body(request))
    message_id = f"msg_{request.request_id[4:]}"
    return await serve_chat(
        request, caller, chat, started=started,
        encode_answer=lambda result, model: anthropic_messages.encode_message(
            result, message_id=message_id, model=model),
        stream_encoder=lambda model, input_estimate: anthropic_messages.StreamEncoder(
            message_id=message_id, model=model, input_estimate=input_estimate),
    )
