"""catalog.yaml -> Provider and Model rows (bootstrap). Only adds what is missing, so the
operator's edits in the admin survive every bootstrap."""

import os
from decimal import Decimal
from pathlib import Path

import yaml
from django.db import transaction

from providers.models import Credential, Model, Provider

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")


def read_catalog(path: Path = CATALOG_PATH) -> dict:
    with path.open() as handle:
        return yaml.safe_load(handle)


def env_name(slug: str, suffix: str) -> str:
    return f"{slug.upper().replace('-', '_')}_{suffix}"


@transaction.atomic
def seed_catalog(catalog: dict, environ: os._Environ | dict = os.environ) -> list[str]:
    """Create missing providers and models; enable each provider whose <SLUG>_API_KEY is set
    (storing the key, comma-separated for several) and apply <SLUG>_BASE_URL; a provider that
    needs no key (quirks auth: none) is enabled by its <SLUG>_BASE_URL alone. Returns notes."""
    notes = []
    for entry in catalog["providers"]:
        slug = entry["slug"]
        provider, created = Provider.objects.get_or_create(
            slug=slug,
            defaults={"name": entry["name"], "wire_format": entry["wire_format"],
                      "base_url": entry.get("base_url", ""), "quirks": entry.get("quirks", {}),
                      "enabled": entry["wire_format"] == "demo"},
        )
        if created:
            notes.append(f"added provider {slug}")
        base_url = environ.get(env_name(slug, "BASE_URL"))
        keys = [key.strip() for key in environ.get(env_name(slug, "API_KEY"), "").split(",") if key.strip()]
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
            notes.append(f"{slug}: {env_name(slug, 'API_KEY')} is set but the provider has no base URL; "
                         f"set {env_name(slug, 'BASE_URL')} too")
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
                notes.append(f"{slug}: disabled credentials no longer in {env_name(slug, 'API_KEY')}")
            if not provider.enabled:
                provider.enabled = True
                provider.save(update_fields=["enabled"])
            notes.append(f"{slug}: enabled with {len(keys)} key(s) from {env_name(slug, 'API_KEY')}")
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
                },
            )
            if created:
                notes.append(f"added model {model['id']}")
    return notes
