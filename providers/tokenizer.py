"""A local count of a chat request's input tokens, for models whose provider offers no count.

It is an estimate, made the way OpenAI documents counting for its chat models: the o200k_base
encoding (GPT-4o's and later OpenAI models'; other vendors' tokenizers differ by some percent)
over every text the prompt carries (message text, tool calls and their arguments, reasoning
replayed, tool definitions, the response schema), plus TOKENS_PER_MESSAGE for each message's
role and separators and REPLY_PRIMING for the start of the answer, plus TOKENS_PER_IMAGE per
image (OpenAI's count for a 1024x1024 image at high detail; images are not decoded here).
The encoding ships inside the bpe-openai package: nothing is downloaded.

The retrieval calls (providers.embedding_types) are counted the same way when a provider reports
no count: embedding inputs (count_inputs), a rerank as Voyage defines its tokens
(estimate_rerank_tokens), a moderation's texts and images (estimate_moderation_tokens). Admission
can size a reservation from them too.
"""

import json
import warnings
from collections.abc import Sequence
from functools import lru_cache

from providers.embedding_types import ModerationRequest, RerankRequest
from providers.types import ChatRequest, ImagePart

TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
TOKENS_PER_IMAGE = 765


@lru_cache(maxsize=1)
def encoding():
    """The o200k_base encoding, loaded on first use (about a second: call off the event loop)."""
    with warnings.catch_warnings():
        # bpe-openai 0.1.4 reads its bundled tables with importlib.resources.open_binary, deprecated
        # since Python 3.11; the tables are read correctly all the same.
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        return bpe_openai.get_encoding("o200k_base")


def count_text(text: str) -> int:
    return len(encoding().encode(text)) if text else 0


def estimate_input_tokens(request: ChatRequest) -> int:
    """CPU work (and the encoding's first load): run it off the event loop."""
    tokens = REPLY_PRIMING
    for message in request.messages:
        tokens += TOKENS_PER_MESSAGE + count_text(message.text()) + count_text(message.reasoning or "")
        for call in message.tool_calls:
            tokens += count_text(call.name) + count_text(call.arguments)
        if isinstance(message.content, list):
            tokens += TOKENS_PER_IMAGE * sum(1 for part in message.content if part.type == "image_url")
    for extra in (request.tools, request.response_format):
        if extra:
            tokens += count_text(json.dumps(extra))
    return tokens


def count_inputs(inputs: Sequence[str | list[int]]) -> int:
    """Embedding inputs' tokens: a string's by the encoding, a token array's by its length."""
    return sum(count_text(item) if isinstance(item, str) else len(item) for item in inputs)


def estimate_rerank_tokens(request: RerankRequest) -> int:
    """A rerank's tokens as Voyage defines them (Jina bills alike): the query once per document,
    plus every document."""
    documents = [count_text(text) for text in request.texts()]
    return count_text(request.query) * len(documents) + sum(documents)


def estimate_moderation_tokens(request: ModerationRequest) -> int:
    """A moderation's input: its texts, and TOKENS_PER_IMAGE for each image."""
    tokens = 0
    for item in request.inputs:
        if isinstance(item, ImagePart):
            tokens += TOKENS_PER_IMAGE
        else:
            tokens += count_text(item if isinstance(item, str) else item.text)
    return tokens
