"""The canonical request, result and stream-event types every adapter speaks.

Client protocols (gateway/v1) decode into these and encode out of them; adapters translate
them to and from one provider's wire format. Neither side sees the other's format.
"""

from dataclasses import dataclass, field
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


@dataclass(slots=True)
class ChatRequest:
    model: str  # the public model id the client asked for
    messages: list[Message]
    stream: bool = False
    include_usage: bool = False  # the client asked for the usage chunk
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None  # OpenAI function-tool shape
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    fallback_models: list[str] = field(default_factory=list)  # the client's own chain (the router's concern)


@dataclass(slots=True)
class Usage:
    """Token counts, normalised: input_tokens is every prompt token, whatever the provider's
    own split (Anthropic reports cache reads and writes beside input_tokens, not inside)."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0  # part of output_tokens
    cached_tokens: int = 0  # part of input_tokens: read from the provider's prompt cache
    cache_write_tokens: int = 0  # part of input_tokens: written to the provider's prompt cache


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
    upstream_model: str = ""


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class Delta:
    """Newly generated output: text, reasoning text, tool-call fragments, generated images."""

    content: str | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    images: list[str] | None = None  # data: URLs
    citations: list[str] | None = None


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
