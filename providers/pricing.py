"""Usage -> Decimal cost; never a float on the way.

Tokens are priced per million; media per unit: per image (by size and quality), per second of
video (by resolution), per million characters of speech, per minute of audio transcribed. The
retrieval calls (providers.embedding_types) reuse them: embeddings and token-billed rerank (Jina,
Voyage) are input tokens at the input price, Cohere's rerank search units are priced per thousand
searches, and moderation is input tokens at the input price (0 by default: OpenAI's is free).
A reservation for one of them is cost_of(prices, <the most the request can use>).
The gateway's own tools (web_fetch, code_interpreter) are priced by the plan, not the model:
ToolPrices, per page read and per second of code run.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from providers.types import Usage

MILLION = Decimal(1_000_000)
THOUSAND = Decimal(1000)
ZERO = Decimal(0)
SIXTY = Decimal(60)

# A price table: (detail, USD) pairs, e.g. (("1024x1024/hd", Decimal("0.08")), ("1792x1024", ...)).
# A tuple, not a dict, so that the prices (and the catalog's frozen ModelInfo) stay hashable.
PriceTable = tuple[tuple[str, Decimal], ...]


@dataclass(frozen=True, slots=True)
class MediaPrices:
    per_image: Decimal = ZERO
    image: PriceTable = ()  # by "WxH/quality", "WxH" or "quality"; else per_image
    per_video_second: Decimal = ZERO
    video_second: PriceTable = ()  # by resolution ("720p"), or "WxH"; else per_video_second
    per_million_characters: Decimal = ZERO
    per_audio_minute: Decimal = ZERO
    per_thousand_searches: Decimal = ZERO  # rerank search units (Cohere: $2.00 per 1,000 for rerank-v3.5)


def unit_price(table: PriceTable, detail: str, default: Decimal) -> Decimal:
    """The price for ``detail`` ("1024x1024/hd"): the whole detail, then each of its parts, then
    the default."""
    prices = dict(table)
    for key in (detail, *detail.split("/")):
        if key and key in prices:
            return prices[key]
    return default


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """Everything a model's use is billed by (tokens, and media units for media models)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal | None = None  # None: cache writes cost what input does
    media: MediaPrices = field(default_factory=MediaPrices)


def cost_of(prices: TokenPrices, usage: Usage) -> Decimal:
    """Cached reads and cache writes are part of the input, billed at their own prices;
    reasoning tokens are part of the output. Media units add their own prices."""
    cached = min(usage.cached_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    write_price = prices.input if prices.cache_write is None else prices.cache_write
    total = (
        (usage.input_tokens - cached - written) * prices.input
        + cached * prices.cached_input
        + written * write_price
        + usage.output_tokens * prices.output
        + usage.characters * prices.media.per_million_characters
    ) / MILLION
    return total + media_cost(prices.media, usage)


def media_cost(prices: MediaPrices, usage: Usage) -> Decimal:
    total = ZERO
    if usage.images:
        total += usage.images * unit_price(prices.image, usage.media_detail, prices.per_image)
    if usage.video_seconds:
        total += usage.video_seconds * unit_price(prices.video_second, usage.media_detail, prices.per_video_second)
    if usage.audio_seconds:
        total += usage.audio_seconds * prices.per_audio_minute / SIXTY
    if usage.search_units:
        total += usage.search_units * prices.per_thousand_searches / THOUSAND
    return total


@dataclass(frozen=True, slots=True)
class ToolPrices:
    """What the gateway's own tools cost a tenant (its plan's prices): per page the web_fetch tool
    reads and per second of code the code_interpreter tool runs."""

    per_web_fetch: Decimal = ZERO
    per_code_second: Decimal = ZERO


def tool_cost(prices: ToolPrices, usage: Usage) -> Decimal:
    return usage.web_fetches * prices.per_web_fetch + usage.code_seconds * prices.per_code_second


def most_cost(prices: TokenPrices, *, input_tokens: int, max_output_tokens: int) -> Decimal:
    """The most a request can cost: every input token uncached, every output token produced."""
    return (input_tokens * prices.input + max_output_tokens * prices.output) / MILLION
