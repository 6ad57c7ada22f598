"""An embedding request split into the calls a provider takes, and the answers put back together.

Every embedding wire format goes through embed_in_batches: it cuts the inputs into consecutive
slices of at most ``max_inputs`` inputs and ``max_tokens`` tokens (a provider's per-call limits:
OpenAI 2,048 inputs and 300,000 tokens, Cohere 96 texts, Gemini 100 requests, Voyage 1,000, Mistral
16,384 tokens), makes the calls (at most MAX_CONCURRENT_CALLS at once), and returns the vectors in
the request's order with the token counts summed. A call whose answer carries no token count is
counted here (providers.tokenizer), and the result is flagged usage_estimated.

Tokens are bounded without a tokenizer (embedding_types.token_ceiling: a string's UTF-8 length
plus a slack for special tokens, a token array's length). The bound is conservative: a batch of
English text is cut at a quarter of the tokens it could carry, never above the limit. An input
alone over the limit is sent alone, for the provider to judge.

One failed call fails the whole request (the others are cancelled); the router retries the request
as a whole, so an adapter never retries a slice itself.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from providers.adapters.answers import malformed
from providers.embedding_types import EmbeddingRequest, EmbeddingResult, token_ceiling
from providers.tokenizer import count_inputs
from providers.types import Target, Usage

MAX_CONCURRENT_CALLS = 4

EmbeddingInput = str | list[int]


@dataclass(slots=True)
class BatchAnswer:
    """One call's answer: a vector per input of its slice, and its token count (None: not reported)."""

    vectors: list[list[float]]
    input_tokens: int | None
    model: str = ""  # the model the provider says answered, when it says


# A wire format's call for one slice of the inputs.
BatchCall = Callable[[Sequence[EmbeddingInput]], Awaitable[BatchAnswer]]


def split_inputs(inputs: Sequence[EmbeddingInput], *, max_inputs: int,
                 max_tokens: int | None = None) -> list[tuple[int, int]]:
    """Consecutive (start, end) slices of ``inputs``, each within both limits (an input over the
    token limit on its own is a slice of its own)."""
    slices: list[tuple[int, int]] = []
    start, tokens = 0, 0
    for index, item in enumerate(inputs):
        bound = token_ceiling(item) if max_tokens else 0
        full = index - start >= max_inputs or (max_tokens and index > start and tokens + bound > max_tokens)
        if full:
            slices.append((start, index))
            start, tokens = index, 0
        tokens += bound
    if start < len(inputs):
        slices.append((start, len(inputs)))
    return slices


def limit_of(target: Target, quirk: str, default: int | None) -> int | None:
    """A per-call limit: the provider's declared quirk (catalog.yaml, the admin), else the wire
    format's default. 0 or a negative value in the quirk means no limit of that kind."""
    value = target.quirks.get(quirk)
    if value is None:
        return default
    return int(value) if int(value) > 0 else None


async def embed_in_batches(request: EmbeddingRequest, target: Target, call: BatchCall, *, max_inputs: int,
                           max_tokens: int | None = None) -> EmbeddingResult:
    """The request's vectors in order, from as many calls as the limits need (module docstring)."""
    inputs = request.inputs
    slices = split_inputs(inputs, max_inputs=max_inputs, max_tokens=max_tokens)
    gate = asyncio.Semaphore(MAX_CONCURRENT_CALLS)

    async def run(start: int, end: int) -> BatchAnswer:
        async with gate:
            answer = await call(inputs[start:end])
        if len(answer.vectors) != end - start:
            raise malformed(f"{len(answer.vectors)} embeddings for {end - start} inputs", target)
        return answer

    if len(slices) == 1:
        answers = [await run(*slices[0])]
    else:
        tasks = [asyncio.create_task(run(start, end)) for start, end in slices]
        try:
            answers = list(await asyncio.gather(*tasks))
        except BaseException:
            # The first failure is the request's (raised as it is, not in a group); the calls still
            # running are stopped, their connections closed.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    return await assemble(answers, slices, request, target)


async def assemble(answers: list[BatchAnswer], slices: list[tuple[int, int]], request: EmbeddingRequest,
                   target: Target) -> EmbeddingResult:
    """The answers joined in the request's order; unreported counts counted here."""
    vectors = [vector for answer in answers for vector in answer.vectors]
    reported = sum(answer.input_tokens or 0 for answer in answers)
    uncounted = [request.inputs[start:end] for answer, (start, end) in zip(answers, slices, strict=True)
                 if answer.input_tokens is None]
    estimated = 0
    if uncounted:
        # The encoding's first load takes about a second, and counting is CPU work: off the loop.
        estimated = await asyncio.to_thread(lambda: sum(count_inputs(part) for part in uncounted))
    model = next((answer.model for answer in answers if answer.model), target.upstream_model)
    return EmbeddingResult(vectors=vectors, usage=Usage(input_tokens=reported + estimated),
                           usage_estimated=bool(uncounted), upstream_model=model)
