"""Wire format -> adapter class. Adding a wire format is one module plus one line here."""

from providers.adapters.anthropic import AnthropicAdapter
from providers.adapters.base import Adapter
from providers.adapters.cohere import CohereAdapter
from providers.adapters.demo import DemoAdapter
from providers.adapters.gemini import GeminiAdapter
from providers.adapters.openai_compatible import OpenAICompatibleAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    "openai_compatible": OpenAICompatibleAdapter,
    "demo": DemoAdapter,
    "cohere": CohereAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
}

_instances: dict[str, Adapter] = {}


def get_adapter(wire_format: str) -> Adapter:
    """The process-wide adapter instance for a wire format (adapters hold no per-call state)."""
    adapter = _instances.get(wire_format)
    if adapter is None:
        adapter = _instances[wire_format] = ADAPTERS[wire_format]()
    return adapter
