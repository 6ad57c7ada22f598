"""catalog.yaml -> Provider and Model rows (bootstrap). Only adds what is missing, so the
operator's edits in the admin survive every bootstrap."""

import os
from decimal import Decimal
from pathlib import Path

import yaml
from django.db import transaction

from providers.models import Credential, Model, Provider

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")
# A provider entry may set its own (web search engines answer in seconds, not minutes).
TIMEOUTS = ("connect_timeout", "first_byte_timeout", "read_timeout", "total_timeout")


# Media prices and options of a model entry: catalog.yaml key -> Model field (prices are USD
# strings; tables map a detail such as "720p" or "1024x1024/hd" to one).
MEDIA_PRICES = {"per_image": "price_per_image", "per_video_second": "price_per_video_second",
                "per_million_characters": "price_per_million_characters", "per_audio_minute": "price_per_audio_minute"}
MEDIA_TABLES = {"image_prices": "image_prices", "video_second_prices": "video_second_prices",
                "media_options": "media_options"}


def media_fields(model: dict) -> dict:
    fields = {field: Decimal(str(model[key])) for key, field in MEDIA_PRICES.items() if key in model}
    fields.update({field: model[key] for key, field in MEDIA_TABLES.items() if key in model})
    return fields


def read_catalog(path: Path = CATALOG_PATH) -> dict:
    with path.open() as handle:
        return yaml.safe_load(handle)


def env_name(slug: str, suffix: str) -> str:
    return f"{slug.upper().replace('-', '_')}_{suffix}"


@transaction.atomic
def seed_catalog(catalog: dict, environ: os._Environ | dict = os.environ) -> list[str]:
    """Create missing providers and models; enable each provider whose <SLUG>_API_KEY (or the
    entry's ``key_env``) is set (storing the key, comma-separated for several) and apply
    <SLUG>_BASE_URL (or the entry's ``base_url_env``); a provider without a base URL stays disabled
    until it has one; a provider that needs no key (quirks auth: none) is enabled by its base URL
    variable alone. Returns notes."""
    notes = []
    for entry in catalog["providers"]:
        slug = entry["slug"]
        provider, created = Provider.objects.get_or_create(
            slug=slug,
            defaults={"name": entry["name"], "wire_format": entry["wire_format"],
                      "base_url": entry.get("base_url", ""), "quirks": entry.get("quirks", {}),
                      "enabled": entry["wire_format"] == "demo",
                      **{name: entry[name] for name in TIMEOUTS if name in entry}},
        )
        if created:
            notes.append(f"added provider {slug}")
        base_url_var = entry.get("base_url_env") or env_name(slug, "BASE_URL")  # AZURE_OPENAI_ENDPOINT
        base_url = environ.get(base_url_var)
        key_var = entry.get("key_env") or env_name(slug, "API_KEY")  # a vendor's own name (REPLICATE_API_TOKEN)
        keys = [key.strip() for key in environ.get(key_var, "").split(",") if key.strip()]
        if base_url and provider.base_url != base_url:
            provider.base_url = base_url
            provider.save(update_fields=["base_url"])
            notes.append(f"{slug}: base URL {base_url}")
        keyless = (entry.get("quirks") or {}).get("auth") == "none"
        if keyless and base_url and not provider.enabled:
            provider.enabled = True
            provider.save(update_fields=["enabled"])
            notes.append(f"{slug}: enabled (no key needed) at {base_url}")
        if keys and not (base_url or provider.base_url):
            notes.append(f"{slug}: {key_var} is set but the provider has no base URL; set {base_url_var} too")
        elif keys:
            for index, key in enumerate(keys):
                label = "env" if index == 0 else f"env-{index + 1}"
                credential = Credential.objects.filter(provider=provider, label=label).first() or Credential(
                    provider=provider, label=label
                )
                credential.set_secret(key)
                credential.enabled = True
                credential.save()
            # Keys dropped from the variable leave the rotation (a leaked key removed must stop).
            dropped = Credential.objects.filter(provider=provider, label__startswith="env-", enabled=True).exclude(
                label__in=[f"env-{n}" for n in range(2, len(keys) + 1)])
            if dropped.update(enabled=False):
                notes.append(f"{slug}: disabled credentials no longer in {key_var}")
            if not provider.enabled:
                provider.enabled = True
                provider.save(update_fields=["enabled"])
            notes.append(f"{slug}: enabled with {len(keys)} key(s) from {key_var}")
        for model in entry.get("models", []):
            _, created = Model.objects.get_or_create(
                public_id=model["id"],
                defaults={
                    "provider": provider, "upstream_name": model["upstream"],
                    "capability": model.get("capability", "chat"), "group": model.get("group", ""),
                    "context_window": model.get("context_window", 128_000),
                    "max_output_tokens": model.get("max_output_tokens", 4096),
                    "input_price": Decimal(model.get("input", "0")), "output_price": Decimal(model.get("output", "0")),
                    "cached_input_price": Decimal(model.get("cached_input", "0")),
                    "cache_write_price": Decimal(model["cache_write"]) if model.get("cache_write") else None,
                    "features": model.get("features", entry.get("features", [])),
                    **media_fields(model),
                },
            )
            if created:
                notes.append(f"added model {model['id']}")
    return notes
