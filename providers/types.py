"""The canonical request, result and stream-event types every adapter speaks.

Client protocols (gateway/v1) decode into these and encode out of them; adapters translate
them to and from one provider's wire format. Neither side sees the other's format.
The media calls' types are in providers.media_types, the retrieval calls' in
providers.embedding_types; both bill by this module's Usage.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image in a message: an https URL or a ``data:<media type>;base64,...`` URL."""

    url: str
    detail: str = "auto"
    type: Literal["image_url"] = "image_url"


ContentPart = TextPart | ImagePart


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it


@dataclass(slots=True)
class Message:
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None
    name: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    # An assistant turn replayed by the client: the reasoning the model showed, and the
    # provider's opaque signature over it (Anthropic thinking, Gemini thought signatures),
    # which some providers require back unchanged to continue the conversation.
    reasoning: str | None = None
    reasoning_signature: str | None = None

    def text(self) -> str:
        """The message's text, parts joined; images contribute nothing."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


@dataclass(frozen=True, slots=True)
class WebSearchOptions:
    """The client asked the gateway to search the web and ground the answer in what it finds
    (gateway.v1.web_search); adapters never see it."""

    context_size: Literal["low", "medium", "high"] = "medium"  # how many results the model reads
    country: str | None = None  # ISO 3166-1 alpha-2, the user's approximate location
    # Offered among an agent's tools, not asked for (Responses tools, tool_choice not forcing it):
    # where the plan or the gateway has no search, the request is served without one.
    optional: bool = False


@dataclass(frozen=True, slots=True)
class WebSearchCall:
    """A web search the gateway made for a request: its query and the pages it found."""

    query: str
    urls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UrlCitation:
    """A span of the answer's text (character offsets, end exclusive) citing a web page."""

    url: str
    title: str
    start_index: int
    end_index: int


# The gateway's own tools a model may call (gateway.serving.gateway_tools): offered to the model as
# function tools of these names, run by the gateway in its tool loop, never sent back to the client.
WEB_FETCH = "web_fetch"
CODE_INTERPRETER = "code_interpreter"
GATEWAY_TOOLS = (WEB_FETCH, CODE_INTERPRETER)


@dataclass(slots=True)
class ToolRun:
    """One call of a gateway tool and what came of it (gateway.serving.tool_loop). Protocols show
    it (Chat Completions as text, Responses as output items); the model reads ``output``."""

    call_id: str  # the model's
    tool: str  # WEB_FETCH | CODE_INTERPRETER
    status: Literal["in_progress", "completed", "failed"] = "in_progress"
    url: str = ""  # web_fetch: the URL asked for; once read, the final one (the one to cite)
    title: str = ""  # web_fetch: the page's title, "" when it has none
    code: str = ""  # code_interpreter: the snippet
    logs: str = ""  # code_interpreter: stdout, stderr, the result and the error, as shown
    output: str = ""  # what the model reads as the tool's result
    error: str = ""  # why it failed (the model reads it in ``output`` too)
    seconds: Decimal = Decimal(0)  # code_interpreter: execution time billed
    offset: int = 0  # characters of the answer's text (every round's, joined) before it


# A reasoning request needs room for its thinking and for an answer. Anthropic takes thinking out
# of max_tokens and refuses a budget under 1,024 tokens (or not under max_tokens), so its adapter
# never sends max_tokens under twice that; admission reserves for the same figure.
MIN_THINKING_BUDGET = 1024
THINKING_OUTPUT_FLOOR = 2 * MIN_THINKING_BUDGET


@dataclass(slots=True)
class TextPrompt:
    """A legacy text completion served natively (a model of capability "completion", at the
    provider's own /completions): the prompt as the client sent it and what only that endpoint
    takes. A translated completion (a chat model) has none: its prompt is a user message."""

    prompt: str | list[int]  # text, or token ids
    suffix: str | None = None
    echo: bool = False
    logprobs: int | None = None  # the most likely alternatives per token, 0 to 5
    best_of: int | None = None  # candidates generated server-side, the best returned


@dataclass(slots=True)
class ChatRequest:
    model: str  # the public model id the client asked for
    messages: list[Message]
    stream: bool = False
    include_usage: bool = False  # the client asked for the usage chunk
    max_output_tokens: int | None = None
    # max_output_tokens is a ceiling, lowered to the model's own most (Anthropic's clients, Claude
    # Code among them, send one large max_tokens whatever the model) rather than refused.
    output_is_ceiling: bool = False
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None  # OpenAI function-tool shape
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    # An explicit reasoning budget in tokens (Anthropic's thinking.budget_tokens, < max_output_tokens);
    # reasoning_effort is then its nearest level, for providers that take a level rather than a budget.
    thinking_budget: int | None = None
    user: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # the client's tags (recorded, never sent on)
    # Anthropic's own request features, verbatim, for the native Anthropic API (other adapters ignore
    # them): the client's anthropic-beta flags and its context_management edits.
    anthropic_betas: list[str] = field(default_factory=list)
    context_edits: list[dict[str, Any]] = field(default_factory=list)
    fallback_models: list[str] = field(default_factory=list)  # the client's own chain (the router's concern)
    web_search: WebSearchOptions | None = None
    # Searches made for this request (gateway.v1.web_search), for protocols that report them
    # (the Responses API's web_search_call items).
    web_search_calls: list[WebSearchCall] = field(default_factory=list)
    # The gateway's own tools the client offered the model (GATEWAY_TOOLS), run in its tool loop,
    # and their runs so far, for protocols that show them.
    gateway_tools: tuple[str, ...] = ()
    tool_runs: list[ToolRun] = field(default_factory=list)
    max_tool_calls: int | None = None  # the client's bound on them (Responses' max_tool_calls), if any
    # Sampling and output arguments only some providers take (providers.arguments says which
    # adapters send them). Each is None (False) when the client left it out or sent its neutral
    # value: decoders drop neutral values, so a penalty of 0 is the request without one.
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logprobs: bool = False  # the answer's token logprobs, as ChatResult.logprobs / Delta.logprobs
    top_logprobs: int | None = None  # alternatives per token (1-20), only with logprobs
    logit_bias: dict[str, int] | None = None  # token id -> bias, zero biases left out
    verbosity: str | None = None  # "low" | "high" ("medium" is every model's default)
    modalities: list[str] | None = None  # output beyond text, e.g. ["text", "audio"]
    prediction: dict[str, Any] | None = None  # OpenAI's predicted output {"type": "content", ...}
    legacy_functions: bool = False  # asked with functions/function_call: answer with function_call
    text_prompt: TextPrompt | None = None  # a native text completion (TextPrompt), not a chat

    def capability(self) -> str:
        """The kind of model that serves it: "completion" for a native text completion, else "chat"."""
        return "chat" if self.text_prompt is None else "completion"

    def is_reasoning(self) -> bool:
        return self.reasoning_effort not in (None, "none")

    def output_limit(self) -> int | None:
        """The max_output_tokens a provider may be sent: the client's, raised to
        THINKING_OUTPUT_FLOOR when reasoning is on; None when the client set none (the model's
        maximum). Adapters may send less, never more: admission reserves spend for this."""
        if self.max_output_tokens is None or not self.is_reasoning():
            return self.max_output_tokens
        return max(self.max_output_tokens, THINKING_OUTPUT_FLOOR)

    def most_generated(self) -> int | None:
        """The most output tokens the provider may generate (and bill) for it: output_limit(),
        times the candidates of a native completion's best_of."""
        limit = self.output_limit()
        best_of = self.text_prompt.best_of if self.text_prompt is not None else None
        return limit * best_of if limit is not None and best_of else limit


@dataclass(slots=True)
class Usage:
    """What a call consumed, in the units it is billed by.

    Tokens are normalised: input_tokens is every prompt token, whatever the provider's own
    split (Anthropic reports cache reads and writes beside input_tokens, not inside). Media
    calls count images, seconds of video, characters of speech or seconds of audio heard;
    ``media_detail`` names the price the units are billed at (``1024x1024/hd``, ``720p``),
    looked up in the model's price table (providers.pricing)."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0  # part of output_tokens
    cached_tokens: int = 0  # part of input_tokens: read from the provider's prompt cache
    cache_write_tokens: int = 0  # part of input_tokens: written to the provider's prompt cache
    images: int = 0
    video_seconds: Decimal = Decimal(0)
    characters: int = 0  # of text turned into speech
    audio_seconds: Decimal = Decimal(0)  # of audio transcribed
    media_detail: str = ""
    web_searches: int = 0
    search_units: int = 0  # rerank searches Cohere bills (a query with up to 100 documents each)
    web_fetches: int = 0  # pages the web_fetch tool read
    code_seconds: Decimal = Decimal(0)  # of code the code_interpreter tool ran


@dataclass(slots=True)
class ChatResult:
    id: str
    content: str | None
    finish_reason: str
    usage: Usage
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None
    reasoning_signature: str | None = None
    images: list[str] = field(default_factory=list)  # data: URLs of images the model generated
    citations: list[str] = field(default_factory=list)  # source URLs (search-grounded models)
    annotations: list[UrlCitation] = field(default_factory=list)  # where the text cites them (web search)
    upstream_model: str = ""
    # Per token of the content, in OpenAI's shape ({"token", "logprob", "bytes", "top_logprobs"});
    # only when the request asked for logprobs and the provider returned them.
    logprobs: list[dict[str, Any]] | None = None
    # A native text completion's logprobs object ({"tokens", "token_logprobs", "top_logprobs",
    # "text_offset"}), as the provider returned it.
    text_logprobs: dict[str, Any] | None = None


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class Delta:
    """Newly generated output: text, reasoning text, tool-call fragments, generated images.

    ``reasoning_signature`` is a piece of the answer's opaque signature, sent as soon as the
    provider gives it: Anthropic's as each thinking block ends (before the blocks after it),
    Gemini's once, after the answer it covers. The answer's signature (ChatResult's, and a replayed
    Message's) is its pieces joined in order; only the adapter that wrote them reads them."""

    content: str | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    images: list[str] | None = None  # data: URLs
    citations: list[str] | None = None
    annotations: list[UrlCitation] | None = None  # citations completed by this or earlier text
    logprobs: list[dict[str, Any]] | None = None  # of this delta's content tokens (ChatResult.logprobs)
    text_logprobs: dict[str, Any] | None = None  # of this delta's text (ChatResult.text_logprobs)
    tool_run: ToolRun | None = None  # a gateway tool starting (in_progress) or done: nothing the model said


@dataclass(slots=True)
class Finish:
    reason: str  # stop | length | tool_calls | content_filter


@dataclass(slots=True)
class UsageReport:
    usage: Usage


StreamEvent = Delta | Finish | UsageReport


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how an adapter calls: everything it needs, nothing about tenants."""

    provider: str
    upstream_model: str
    base_url: str
    api_key: str = field(repr=False)
    connect_timeout: float = 5.0
    first_byte_timeout: float = 300.0
    read_timeout: float = 60.0  # between stream chunks (the router enforces it)
    total_timeout: float = 600.0
    quirks: dict[str, Any] = field(default_factory=dict)
