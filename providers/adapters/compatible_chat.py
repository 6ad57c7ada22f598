"""Chat for vendors whose chat is OpenAI's shape while their media APIs are their own (Volcengine
Ark, ModelScope, the Hugging Face router): their adapters subclass OpenAICompatibleChat for
complete and stream and add the media operations they speak."""

from collections.abc import AsyncIterator

from providers.adapters.base import Adapter
from providers.adapters.openai.compatible import OpenAICompatibleAdapter
from providers.types import ChatRequest, ChatResult, StreamEvent, Target

CHAT = OpenAICompatibleAdapter()


class OpenAICompatibleChat(Adapter):
    """complete and stream go to the OpenAI-compatible adapter, quirks and all. Only those two:
    inheriting OpenAICompatibleAdapter would also claim OpenAI's images, video and audio routes,
    which these vendors do not serve (``supports`` reads which methods a class defines)."""

    SUPPORTED_ARGUMENTS = CHAT.SUPPORTED_ARGUMENTS

    def supported_arguments(self, target: Target) -> frozenset[str]:
        return CHAT.supported_arguments(target)

    async def complete(self, request: ChatRequest, target: Target) -> ChatResult:
        return await CHAT.complete(request, target)

    def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        return CHAT.stream(request, target)
