from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from providers import encryption

PRICE = {"max_digits": 14, "decimal_places": 6, "default": Decimal("0")}
# Request features a model may lack; requests using an undeclared one get a 400 before any call.
FEATURES = ["tools", "vision", "json_schema", "reasoning", "image_output"]
# Failures a fallback chain may move on from (providers.router.fallback_reason names them).
FALLBACK_REASONS = ["rate_limited", "unavailable", "context_window", "content_policy"]


def default_fallback_reasons() -> list[str]:
    return ["rate_limited", "unavailable"]


def validate_wire_format(value: str) -> None:
    from providers.registry import (
        WIRE_FORMATS,  # here: loading the models must not import every adapter
    )

    if value not in WIRE_FORMATS:
        raise ValidationError(f"Unknown wire format '{value}'; one of: {', '.join(WIRE_FORMATS)}.")


class Provider(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    # Validated against the registry rather than declared as choices, so that adding an adapter
    # needs no migration.
    wire_format = models.CharField(max_length=32, validators=[validate_wire_format],
                                   help_text="The adapter: a key of providers.registry.ADAPTERS.")
    base_url = models.URLField(max_length=300, blank=True)
    enabled = models.BooleanField(default=False)
    quirks = models.JSONField(default=dict, blank=True, help_text="Declared deviations of a compatible API.")
    connect_timeout = models.FloatField(default=5.0, help_text="Seconds to open a connection.")
    first_byte_timeout = models.FloatField(
        default=300.0, help_text="Seconds until the answer starts (a non-streamed answer: until it arrives).")
    read_timeout = models.FloatField(default=60.0, help_text="Seconds of silence allowed between stream chunks.")
    total_timeout = models.FloatField(default=600.0, help_text="Seconds for the whole call.")

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Credential(models.Model):
    """A provider API key, encrypted at rest (Fernet with CREDENTIALS_KEY)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="credentials")
    label = models.CharField(max_length=100, default="default")
    secret_encrypted = models.TextField(editable=False)
    hint = models.CharField(max_length=16, editable=False, help_text="Last four characters, for recognition.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "label"], name="unique_credential_label")]

    def __str__(self) -> str:
        return f"{self.provider.slug}/{self.label} (…{self.hint})"

    def set_secret(self, raw: str) -> None:
        self.secret_encrypted = encryption.encrypt(raw)
        self.hint = raw[-4:]

    def get_secret(self) -> str:
        return encryption.decrypt(self.secret_encrypted)


class Capability(models.TextChoices):
    CHAT = "chat", "Chat"
    COMPLETION = "completion", "Text completion"
    IMAGE = "image", "Image"
    VIDEO = "video", "Video"
    SPEECH = "speech", "Speech"
    TRANSCRIPTION = "transcription", "Transcription"
    EMBEDDING = "embedding", "Embedding"
    RERANK = "rerank", "Rerank"
    MODERATION = "moderation", "Moderation"


class Model(models.Model):
    """A public model id (``openai/gpt-4o-mini``) served by one provider, with its list prices."""

    public_id = models.CharField(max_length=200, unique=True)
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    upstream_name = models.CharField(max_length=200)
    capability = models.CharField(max_length=16, choices=Capability.choices, default=Capability.CHAT)
    group = models.CharField(max_length=32, blank=True, help_text="Model group plans can allow, e.g. 'small'.")
    context_window = models.PositiveIntegerField(default=128_000)
    max_output_tokens = models.PositiveIntegerField(default=4096)
    input_price = models.DecimalField(**PRICE, help_text="USD per million input tokens.")
    output_price = models.DecimalField(**PRICE, help_text="USD per million output tokens.")
    cached_input_price = models.DecimalField(**PRICE, help_text="USD per million cached input tokens.")
    cache_write_price = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True,
        help_text="USD per million tokens written to the prompt cache; empty = the input price.",
    )
    price_per_image = models.DecimalField(**PRICE, help_text="USD per image (image models), unless image_prices says.")
    image_prices = models.JSONField(
        default=dict, blank=True,
        help_text='USD per image by "WxH/quality", "WxH" or "quality", e.g. {"1024x1024/hd": "0.08"}.')
    price_per_video_second = models.DecimalField(
        **PRICE, help_text="USD per second of video, unless video_second_prices says.")
    video_second_prices = models.JSONField(
        default=dict, blank=True, help_text='USD per second by resolution, e.g. {"720p": "0.10", "1080p": "0.30"}.')
    price_per_million_characters = models.DecimalField(**PRICE, help_text="USD per million characters of speech.")
    price_per_audio_minute = models.DecimalField(**PRICE, help_text="USD per minute of audio transcribed.")
    price_per_thousand_searches = models.DecimalField(
        **PRICE, help_text="USD per 1,000 rerank search units (Cohere); token-billed rerank uses the input price.")
    media_options = models.JSONField(
        default=dict, blank=True,
        help_text='What a media model accepts, checked before any call, e.g. {"sizes": ["1024x1024"], "max_n": 1, '
                  '"qualities": ["standard", "hd"], "durations": [4, 8], "resolutions": ["720p"], "voices": [...]}.')
    features = models.JSONField(
        default=list, blank=True,
        help_text=f"What the model accepts beyond plain text, of {FEATURES}; empty = not declared (all allowed).",
    )
    fallbacks = models.JSONField(
        default=list, blank=True,
        help_text="Public ids tried in order when this model fails before answering, e.g. ['openai/gpt-4.1-mini'].",
    )
    fallback_on = models.JSONField(
        default=default_fallback_reasons, blank=True,
        help_text=f"Which failures move on to the fallbacks, of {FALLBACK_REASONS}.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["public_id"]

    def __str__(self) -> str:
        return self.public_id


class Deployment(models.Model):
    """Another way to serve a public model: a provider (and its credentials) under its own name
    for the model. The model's own provider is its first deployment (priority 0, weight 1);
    lower priorities are tried first, and deployments of one priority share the traffic by
    weight (smooth weighted round robin)."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="deployments")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="deployments")
    upstream_name = models.CharField(max_length=200)
    priority = models.PositiveSmallIntegerField(default=0, help_text="Lower is tried first; the model's own is 0.")
    weight = models.PositiveSmallIntegerField(default=1, help_text="Share of traffic within its priority.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["model", "priority", "-weight"]
        constraints = [models.UniqueConstraint(fields=["model", "provider", "upstream_name"],
                                               name="unique_deployment")]

    def __str__(self) -> str:
        return f"{self.model.public_id} via {self.provider.slug}/{self.upstream_name}"
