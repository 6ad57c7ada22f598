"""The canonical requests and results of the media calls: images, video, speech and transcription.

Like providers.types (the chat IR, and the Usage every call bills by), client protocols decode
into these and adapters translate them to one provider's wire format. Generated files come back
either inline (``content``) or as a provider URL the gateway copies at once (provider URLs expire).
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from providers.types import Usage


@dataclass(slots=True)
class MediaInput:
    """A file the client sent (an image to edit or animate, audio to transcribe), or a URL to one."""

    content: bytes | None = field(default=None, repr=False)
    content_type: str = "application/octet-stream"
    filename: str = ""
    url: str | None = None  # https URL or data: URL, when the client sent no bytes


@dataclass(slots=True)
class GeneratedMedia:
    content_type: str
    content: bytes | None = field(default=None, repr=False)
    url: str | None = None  # fetched with Adapter.fetch_media (some need the provider's key)
    revised_prompt: str | None = None


@dataclass(slots=True)
class ImageRequest:
    model: str  # public id
    prompt: str
    n: int = 1
    size: str | None = None  # "WxH"
    quality: str | None = None
    style: str | None = None
    output_format: str | None = None  # png | jpeg | webp
    aspect_ratio: str | None = None  # "16:9", for providers that take a ratio rather than a size
    seed: int | None = None
    negative_prompt: str | None = None
    guidance_scale: float | None = None
    steps: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # declared provider extras, passed through
    images: list[MediaInput] = field(default_factory=list)  # edits: the image(s) to change
    mask: MediaInput | None = None
    user: str | None = None


@dataclass(slots=True)
class ImageResult:
    images: list[GeneratedMedia]
    usage: Usage  # images, media_detail (and tokens, for token-priced image models)
    upstream_model: str = ""


@dataclass(slots=True)
class VideoRequest:
    model: str  # public id
    prompt: str
    duration_seconds: int | None = None
    aspect_ratio: str | None = None  # "16:9"
    resolution: str | None = None  # "720p"
    size: str | None = None  # "1280x720" (OpenAI's shape)
    negative_prompt: str | None = None
    seed: int | None = None
    fps: int | None = None
    image: MediaInput | None = None  # image-to-video: the first frame
    extra: dict[str, Any] = field(default_factory=dict)


VideoStatus = Literal["queued", "in_progress", "completed", "failed", "cancelled"]


@dataclass(slots=True)
class VideoJobState:
    """Where a provider's job stands. ``handle`` is the adapter's own (JSON-serialisable) note
    of how to reach the job again (status and result URLs, operation name): the gateway stores
    it and hands it back unchanged, so polling survives a restart."""

    status: VideoStatus
    handle: dict[str, Any]
    progress: int | None = None  # 0-100, when the provider says
    error: str | None = None
    video: GeneratedMedia | None = None  # when completed
    usage: Usage = field(default_factory=Usage)  # video_seconds, media_detail (when completed)
    upstream_model: str = ""


@dataclass(slots=True)
class SpeechRequest:
    model: str
    input: str
    voice: str | None = None
    response_format: str = "mp3"  # mp3 | opus | aac | flac | wav | pcm
    speed: float | None = None
    instructions: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SpeechResult:
    audio: bytes = field(repr=False)
    content_type: str
    usage: Usage  # characters (or tokens, for token-priced speech models)
    upstream_model: str = ""


@dataclass(slots=True)
class TranscriptionRequest:
    model: str
    file: MediaInput
    language: str | None = None
    prompt: str | None = None
    response_format: str = "json"  # json | text | srt | verbose_json | vtt
    temperature: float | None = None
    timestamp_granularities: list[str] = field(default_factory=list)


@dataclass(slots=True)
class TranscriptionResult:
    text: str
    usage: Usage  # audio_seconds (or tokens, for token-priced transcription models)
    language: str | None = None
    duration_seconds: Decimal | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)
    words: list[dict[str, Any]] = field(default_factory=list)
    upstream_model: str = ""
