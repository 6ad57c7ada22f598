"""Wire format -> adapter class (chat models) or search client (web search engines). Adding a
wire format is one module plus one line here."""

from providers.adapters.anthropic.adapter import AnthropicAdapter
from providers.adapters.base import Adapter
from providers.adapters.cohere.adapter import CohereAdapter
from providers.adapters.demo import DemoAdapter
from providers.adapters.fal.adapter import FalAdapter
from providers.adapters.gemini.adapter import GeminiAdapter
from providers.adapters.huggingface import HuggingFaceAdapter
from providers.adapters.modelscope import ModelScopeAdapter
from providers.adapters.openai.azure import AzureOpenAIAdapter
from providers.adapters.openai.compatible import OpenAICompatibleAdapter
from providers.adapters.replicate import ReplicateAdapter
from providers.adapters.runway import RunwayAdapter
from providers.adapters.stability import StabilityAdapter
from providers.adapters.volcengine import VolcengineAdapter
from providers.adapters.wavespeed import WaveSpeedAdapter
from providers.web_search import ExaClient, SearchClient, SerperClient, TavilyClient

ADAPTERS: dict[str, type[Adapter]] = {
    "openai_compatible": OpenAICompatibleAdapter,
    "azure_openai": AzureOpenAIAdapter,
    "demo": DemoAdapter,
    "cohere": CohereAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
    "runway": RunwayAdapter,
    "fal": FalAdapter,
    "replicate": ReplicateAdapter,
    "stability": StabilityAdapter,
    "wavespeed": WaveSpeedAdapter,
    "volcengine": VolcengineAdapter,
    "modelscope": ModelScopeAdapter,
    "huggingface": HuggingFaceAdapter,
}

SEARCH_CLIENTS: dict[str, type[SearchClient]] = {
    "tavily": TavilyClient,
    "serper": SerperClient,
    "exa": ExaClient,
}

WIRE_FORMATS = sorted([*ADAPTERS, *SEARCH_CLIENTS])  # what a Provider row may declare

_instances: dict[str, Adapter] = {}
_search_clients: dict[str, SearchClient] = {}


def get_adapter(wire_format: str) -> Adapter:
    """The process-wide adapter instance for a wire format (adapters hold no per-call state)."""
    adapter = _instances.get(wire_format)
    if adapter is None:
        adapter = _instances[wire_format] = ADAPTERS[wire_format]()
    return adapter


def get_search_client(wire_format: str) -> SearchClient:
    """The process-wide search client for a wire format (clients hold no per-call state)."""
    client = _search_clients.get(wire_format)
    if client is None:
        client = _search_clients[wire_format] = SEARCH_CLIENTS[wire_format]()
    return client
