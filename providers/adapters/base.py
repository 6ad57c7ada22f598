"""The adapter interface: canonical request in, canonical result or events out.

An adapter translates and speaks HTTP, nothing else. It must NOT look at tenants, plans,
prices, the database or Django requests, and must NOT retry (the router does). Every vendor
failure leaves it as a providers.errors.ProviderError; an answer not in the vendor's wire format
as ProviderMalformed (providers.adapters.answers, which also reads usage leniently; should an
adapter still fail reading an answer, the router's read_answer / checked_event make it malformed).
"""

from collections.abc import AsyncIterator

from providers.adapters.http_calls import download
from providers.embedding_types import (
    EmbeddingRequest,
    EmbeddingResult,
    ModerationRequest,
    ModerationResult,
    RerankRequest,
    RerankResult,
)
from providers.media_types import (
    GeneratedMedia,
    ImageRequest,
    ImageResult,
    SpeechRequest,
    SpeechResult,
    TranscriptionRequest,
    TranscriptionResult,
    VideoJobState,
    VideoRequest,
)
from providers.types import ChatRequest, ChatResult, StreamEvent, Target


class Adapter:
    # The calls this adapter makes, declared (endpoints check it before admission), by method
    # name: complete, stream, count_tokens, generate_images, edit_images, vary_images, speech,
    # transcribe, translate, submit_video, poll_video, cancel_video. Safe default: none.
    OPERATIONS: frozenset[str] = frozenset()
    wire_format: str = ""
    # The sampling and output arguments this wire format sends (names of providers.arguments.
    # ARGUMENTS). Safe default: none, so a request setting one to a non-neutral value is refused
    # before any call rather than silently answered without it.
    SUPPORTED_ARGUMENTS: frozenset[str] = frozenset()

    def supported_arguments(self, target: Target) -> frozenset[str]:
        """The arguments this adapter sends to ``target``'s provider: SUPPORTED_ARGUMENTS unless a
        wire format narrows it per provider (its quirks). Must NOT call anything: it runs before
        admission, for every deployment of a chain."""
        return self.SUPPORTED_ARGUMENTS

    async def complete(self, request: ChatRequest, target: Target) -> ChatResult:
        """One non-streamed chat completion. Usage must be the provider's own count."""
        raise NotImplementedError

    def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        """An async iterator of Delta, then one Finish, then one UsageReport when the provider
        reports usage. Closing the iterator early must close the upstream connection."""
        raise NotImplementedError

    async def count_tokens(self, request: ChatRequest, target: Target) -> int | None:
        """The request's input tokens by the provider's own count, or None where the provider has
        no counting endpoint (the caller then estimates; providers.tokenizer)."""
        return None

    # Media. A wire format implements the ones its provider offers; the catalog only lists
    # models of a capability on providers whose adapter has it (the endpoints check
    # ``supports``). Each waits for the provider's answer (polling its queue where it has
    # one) within target.total_timeout, except video, which is a job the gateway polls.

    async def generate_images(self, request: ImageRequest, target: Target) -> ImageResult:
        """Images from a prompt. usage.images is the number the provider made; media_detail the
        size/quality they are priced at."""
        raise NotImplementedError

    async def edit_images(self, request: ImageRequest, target: Target) -> ImageResult:
        """Images from request.images (and request.mask) changed as the prompt says."""
        raise NotImplementedError

    async def vary_images(self, request: ImageRequest, target: Target) -> ImageResult:
        """request.n variations of request.images[0], with no prompt (request.prompt is empty);
        usage as for generate_images. The endpoint sends only models whose catalog row declares
        media_options ``variations`` (dall-e-2); must NOT fall back to an edit or a generation."""
        raise NotImplementedError

    async def submit_video(self, request: VideoRequest, target: Target) -> VideoJobState:
        """Start a video job; answer as soon as the provider accepted it (status queued or
        in_progress). Must NOT wait for the video."""
        raise NotImplementedError

    async def poll_video(self, state: VideoJobState, target: Target) -> VideoJobState:
        """The job's state now, from ``state.handle``. When completed, ``video`` says where the
        file is and ``usage.video_seconds`` how long it is."""
        raise NotImplementedError

    def can_cancel_video(self, state: VideoJobState) -> bool:
        """Whether the provider stops the job in ``state`` (and stops billing it) when asked: by
        default it cannot. The gateway refuses a client's cancel it could not pass on, since the
        provider would go on and bill the job."""
        return False

    async def cancel_video(self, state: VideoJobState, target: Target) -> None:
        """Ask the provider to stop the job, where it can (can_cancel_video); by default a no-op."""

    async def speech(self, request: SpeechRequest, target: Target) -> SpeechResult:
        """Audio for request.input; usage.characters is its length."""
        raise NotImplementedError

    async def transcribe(self, request: TranscriptionRequest, target: Target) -> TranscriptionResult:
        """Text from request.file; usage.audio_seconds is the audio's duration."""
        raise NotImplementedError

    async def translate(self, request: TranscriptionRequest, target: Target) -> TranscriptionResult:
        """English text from request.file, whatever language is spoken in it (request.language and
        timestamp_granularities are empty: a translation takes neither); usage as for transcribe.
        The endpoint sends only models whose catalog row declares media_options ``translations``
        (whisper-1); must NOT fall back to a transcription, which would answer in another language."""
        raise NotImplementedError

    async def fetch_media(self, media: GeneratedMedia, target: Target) -> bytes:
        """The bytes of a generated file: inline, or downloaded from its URL. Adapters whose
        file URLs need the provider's key override this."""
        if media.content is not None:
            return media.content
        return await download(media.url or "", target)

    # Retrieval: embeddings, rerank, moderation (providers.embedding_types). Each has an explicit
    # flag, False unless the wire format offers it; for a family of hosts (the OpenAI-compatible one)
    # the flag reads the provider's declared quirks, so it takes the target. The endpoints check the
    # flag before admission, for the deployment they would call; calling the method on a target whose
    # flag is False is a programming error (NotImplementedError).

    def can_embed(self, target: Target) -> bool:
        """Whether ``target``'s provider embeds text through this adapter."""
        return False

    async def embed(self, request: EmbeddingRequest, target: Target) -> EmbeddingResult:
        """One vector per input, in the request's order. Inputs beyond the provider's per-call limit
        are split into several calls and put back together in order, their usage summed; a call the
        provider reports no token count for is counted locally (providers.tokenizer) and the result
        flagged usage_estimated. Must NOT send ``dimensions`` or ``input_type`` a provider has no
        field for: dimensions are checked against the catalog before admission
        (embedding_types.check_embedding_options); an input the provider cannot take (token arrays
        outside the OpenAI-shaped hosts) raises UnsupportedFeature before any call."""
        raise NotImplementedError

    def can_rerank(self, target: Target) -> bool:
        """Whether ``target``'s provider reranks documents through this adapter."""
        return False

    async def rerank(self, request: RerankRequest, target: Target) -> RerankResult:
        """The documents ranked by relevance to the query, most relevant first, at most top_n, each
        hit the document's index (and the request's own document when asked for: never the
        provider's copy). Usage as the provider bills: search units or input tokens."""
        raise NotImplementedError

    def can_moderate(self, target: Target) -> bool:
        """Whether ``target``'s provider classifies content (OpenAI's moderation shape)."""
        return False

    async def moderate(self, request: ModerationRequest, target: Target) -> ModerationResult:
        """One verdict per input (one for a multimodal input), in OpenAI's shape with the category
        names as the provider sent them. Usage is a local count (no moderation API reports one)."""
        raise NotImplementedError

    def supports(self, operation: str) -> bool:
        """Whether this adapter makes the call ``operation`` (one of OPERATIONS)."""
        return operation in self.OPERATIONS
