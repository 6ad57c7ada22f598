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


def cost_of(prices: TokenPrices, usage: Usage) -> Decimal:
    """Cached tokens are part of the input and billed at the cached price; reasoning tokens are
    part of the output."""
    cached = min(usage.cached_tokens, usage.input_tokens)
    total = (
        (usage.input_tokens - cached) * prices.input
        + cached * prices.cached_input
        + usage.output_tokens * prices.output
    )
    return total / MILLION


def most_cost(prices: TokenPrices, *, input_tokens: int, max_output_tokens: int) -> Decimal:
    """The most a request can cost: every input token uncached, every output token produced."""
    return (input_tokens * prices.input + max_output_tokens * prices.output) / MILLION
