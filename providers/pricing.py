"""Usage -> Decimal cost. Prices are USD per million tokens; never a float on the way."""

from dataclasses import dataclass
from decimal import Decimal

from providers.types import Usage

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class TokenPrices:
    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal | None = None  # None: cache writes cost what input does


def cost_of(prices: TokenPrices, usage: Usage) -> Decimal:
    """Cached reads and cache writes are part of the input, billed at their own prices;
    reasoning tokens are part of the output."""
    cached = min(usage.cached_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    write_price = prices.input if prices.cache_write is None else prices.cache_write
    total = (
        (usage.input_tokens - cached - written) * prices.input
        + cached * prices.cached_input
        + written * write_price
        + usage.output_tokens * prices.output
    )
    return total / MILLION


def most_cost(prices: TokenPrices, *, input_tokens: int, max_output_tokens: int) -> Decimal:
    """The most a request can cost: every input token uncached, every output token produced."""
    return (input_tokens * prices.input + max_output_tokens * prices.output) / MILLION
