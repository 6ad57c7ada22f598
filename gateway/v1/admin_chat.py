"""``admin/...`` models in /v1/chat/completions: the tenant commands of
gateway.serving.admin_commands, answered as a chat completion (whole or streamed) from the last
user message, with no provider call and nothing billed."""

from collections.abc import Awaitable, Callable

from django.http import HttpResponse

from gateway.serving import admin_commands
from gateway.serving.call import Call
from gateway.v1.media_chat import answer_text, chunk_stream, last_user_text
from providers.types import ChatRequest


def admin_route(model: str) -> Callable[..., Awaitable[HttpResponse]] | None:
    return serve_admin_chat if admin_commands.is_admin_model(model) else None


async def serve_admin_chat(request, call: Call, chat: ChatRequest, *, completion_id: str) -> HttpResponse:
    text = await admin_commands.run_command(call, chat.model, last_user_text(chat))
    return answer_text(text, chat, chunk_stream(chat, completion_id), completion_id=completion_id)
