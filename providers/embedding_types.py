"""The canonical requests and results of the retrieval calls: embeddings, rerank, moderation.

Like providers.types (the chat IR) and providers.media_types, client protocols decode into
these and adapters translate them to one provider's wire format (providers.adapters: openai_embeddings,
gemini_embeddings, cohere_embed, rerank, openai_moderations; embedding_batches splits and joins). Usage is the IR's own Usage: embeddings and moderation count input tokens,
rerank counts search units (Cohere) or input tokens (Jina, Voyage), as the provider bills.
``usage_estimated`` says the provider reported no count and the tokens were counted here
(providers.tokenizer), as the chat path flags an estimate.

    check_embedding_options(request, options, model)   what the catalog row says the model takes,
                                                       checked before admission (UnsupportedArgument)
    EmbeddingRequest.most_usage(), RerankRequest.most_usage()
                                                       the most a request can be billed for, without a
                                                       tokenizer: pricing.cost_of(prices, it) reserves it
"""

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from providers import errors
from providers.types import ImagePart, TextPart, Usage

# What the embeddings are for, said once for every provider that takes a hint: Gemini's taskType,
# Cohere's input_type, Voyage's input_type, Jina's task. Providers without one ignore it.
InputType = Literal["query", "document", "similarity", "classification", "clustering"]
INPUT_TYPES: tuple[str, ...] = ("query", "document", "similarity", "classification", "clustering")
TOKEN_SLACK = 2  # the special tokens a model may add to an input
DOCUMENTS_PER_SEARCH_UNIT = 100  # Cohere: a query with up to 100 documents is one search unit
# Cohere's billing FAQ: a document longer than this, with the query, is split into chunks that each
# count as a document (newer models truncate at max_tokens_per_doc instead; the bound covers both).
SEARCH_CHUNK_TOKENS = 510


def token_ceiling(item: str | list[int]) -> int:
    """At least an input's token count under any tokenizer working on bytes (every token covers at
    least one byte): a string's UTF-8 length plus TOKEN_SLACK; a token array's own length."""
    return len(item.encode()) + TOKEN_SLACK if isinstance(item, str) else len(item)


@dataclass(slots=True)
class EmbeddingRequest:
    model: str  # the public model id
    # Strings, or token arrays (OpenAI's tokens: only OpenAI-shaped hosts take them). One vector each,
    # in this order.
    inputs: list[str] | list[list[int]]
    dimensions: int | None = None  # only where the catalog row allows it (check_embedding_options)
    input_type: InputType | None = None
    user: str | None = None
    # How the client wants the vectors. Adapters ask the provider for the same where it can, so the
    # numbers pass through unchanged: float32 bytes for base64, the provider's digits for float.
    encoding_format: Literal["float", "base64"] = "float"

    def has_token_arrays(self) -> bool:
        return any(not isinstance(item, str) for item in self.inputs)

    def most_usage(self) -> Usage:
        """The most input tokens the provider can bill (token_ceiling of every input)."""
        return Usage(input_tokens=sum(token_ceiling(item) for item in self.inputs))


@dataclass(slots=True)
class EmbeddingResult:
    vectors: list[list[float]]  # one per input, in the request's order
    usage: Usage  # input_tokens: the provider's count, summed over the calls a batch was split into
    usage_estimated: bool = False  # some call reported no count: its inputs were counted here
    upstream_model: str = ""


RerankDocument = str | dict[str, Any]


@dataclass(slots=True)
class RerankRequest:
    model: str
    query: str
    documents: list[RerankDocument]  # strings, or objects (sent as text: their "text", else YAML)
    top_n: int | None = None  # None: every document, ranked
    return_documents: bool = False
    rank_fields: tuple[str, ...] = ()  # of an object document, the fields ranked on (all when empty)

    def texts(self) -> list[str]:
        """The documents as the rerank APIs take them (document_text)."""
        return [document_text(document, self.rank_fields) for document in self.documents]

    def most_usage(self) -> Usage:
        """The most the provider can bill, in both units (a model is priced in one of them): the
        search units of its documents split into chunks as Cohere bills them, and the tokens as
        Jina and Voyage count them (the query's once per document, plus every document's)."""
        query = token_ceiling(self.query)
        documents = [token_ceiling(text) for text in self.texts()]
        chunks = sum(math.ceil((query + size) / SEARCH_CHUNK_TOKENS) for size in documents)
        return Usage(input_tokens=query * len(documents) + sum(documents),
                     search_units=max(1, math.ceil(chunks / DOCUMENTS_PER_SEARCH_UNIT)))


@dataclass(slots=True)
class RerankHit:
    index: int  # into the request's documents
    relevance_score: float
    document: RerankDocument | None = None  # the request's own, when it asked for them back


@dataclass(slots=True)
class RerankResult:
    results: list[RerankHit]  # most relevant first, at most top_n
    usage: Usage  # search_units (Cohere) or input_tokens (Jina, Voyage)
    usage_estimated: bool = False
    upstream_model: str = ""
    id: str = ""


def document_text(document: RerankDocument, fields: tuple[str, ...] = ()) -> str:
    """A document as the rerank APIs take it (strings only): a string as is; of an object, its
    ``fields`` (rank_fields; all when none are named), its ``text`` alone when that is all there
    is, else as YAML, which Cohere recommends for structured documents (and which reads as well as
    JSON to the other rerankers)."""
    if isinstance(document, str):
        return document
    if fields:
        document = {name: document[name] for name in fields if name in document}
    if set(document) == {"text"} and isinstance(document["text"], str):
        return document["text"]
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).strip()


# A moderation input: a string, or one input made of text and image parts (OpenAI's multimodal
# input, classified as one: one verdict for all its parts).
ModerationPart = TextPart | ImagePart


@dataclass(slots=True)
class ModerationRequest:
    model: str
    # Several texts (one verdict each), or the parts of a single multimodal input (one verdict).
    inputs: list[str] | list[ModerationPart]

    def is_multimodal(self) -> bool:
        return any(not isinstance(item, str) for item in self.inputs)

    def expected_verdicts(self) -> int:
        return 1 if self.is_multimodal() else len(self.inputs)


@dataclass(slots=True)
class ModerationVerdict:
    """OpenAI's result shape, keys as OpenAI names them ("self-harm/intent", "violence/graphic")."""

    flagged: bool
    categories: dict[str, bool] = field(default_factory=dict)
    category_scores: dict[str, float] = field(default_factory=dict)
    category_applied_input_types: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class ModerationResult:
    results: list[ModerationVerdict]  # one per input (one for a multimodal input)
    usage: Usage  # input_tokens, counted here: moderation APIs report none
    usage_estimated: bool = True
    upstream_model: str = ""
    id: str = ""


def check_embedding_options(request: EmbeddingRequest, options: dict[str, Any], model: str) -> None:
    """Refuse, before any call, ``dimensions`` the catalog row does not allow: ``options`` is the
    model's media_options, where ``dimensions`` lists the sizes it makes (Cohere embed-v4.0:
    256/512/1024/1536) and ``max_dimensions`` allows any size up to it (OpenAI text-embedding-3-*).
    A model declaring neither takes no ``dimensions`` at all (text-embedding-ada-002, mistral-embed)."""
    if request.dimensions is None:
        return
    allowed = options.get("dimensions") or ()
    most = options.get("max_dimensions")
    if request.dimensions in allowed or (most and 1 <= request.dimensions <= int(most)):
        return
    if allowed or most:
        sizes = ", ".join(str(size) for size in allowed) if allowed else f"1 to {most}"
        detail = f"takes dimensions {sizes}"
    else:
        detail = "has one fixed size: leave dimensions out"
    raise errors.UnsupportedArgument(f"'{model}' {detail}, not {request.dimensions}.", param="dimensions")
