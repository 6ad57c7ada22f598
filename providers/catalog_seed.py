"""catalog.yaml -> Provider and Model rows (bootstrap). Only adds what is missing, so the
operator's edits in the admin survive every bootstrap. Also add_azure_deployment: an Azure OpenAI
deployment as catalog rows (the admin's form)."""

import copy
import functools
import os
from decimal import Decimal
from pathlib import Path

import httpx
import yaml
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from providers.adapters.openai.azure import endpoint_of
from providers.models import Credential, Deployment, Model, Provider

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")
# A provider entry may set its own (web search engines answer in seconds, not minutes).
TIMEOUTS = ("connect_timeout", "first_byte_timeout", "read_timeout", "total_timeout")


# Media prices and options of a model entry: catalog.yaml key -> Model field (prices are USD
# strings; tables map a detail such as "720p" or "1024x1024/hd" to one).
MEDIA_PRICES = {"per_image": "price_per_image", "per_video_second": "price_per_video_second",
                "per_million_characters": "price_per_million_characters", "per_audio_minute": "price_per_audio_minute",
                "per_thousand_searches": "price_per_thousand_searches"}
MEDIA_TABLES = {"image_prices": "image_prices", "video_second_prices": "video_second_prices",
                "media_options": "media_options"}


def media_fields(model: dict) -> dict:
    fields = {field: Decimal(str(model[key])) for key, field in MEDIA_PRICES.items() if key in model}
    fields.update({field: model[key] for key, field in MEDIA_TABLES.items() if key in model})
    return fields


def read_catalog(path: Path = CATALOG_PATH) -> dict:
    """The catalog file, parsed once per file version (libyaml's loader where installed: the pure
    Python one takes most of a second on it); a fresh copy each call, which seeding may change."""
    return copy.deepcopy(parsed_catalog(path, path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4)
def parsed_catalog(path: Path, version: int) -> dict:
    with path.open() as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def env_name(slug: str, suffix: str) -> str:
    return f"{slug.upper().replace('-', '_')}_{suffix}"


@transaction.atomic
def seed_catalog(catalog: dict, environ: os._Environ | dict = os.environ) -> list[str]:
    """Create missing providers and models; enable each provider whose <SLUG>_API_KEY (or the
    entry's ``key_env``) is set (storing the key, comma-separated for several) and apply
    <SLUG>_BASE_URL (or the entry's ``base_url_env``); a provider without a base URL stays disabled
    until it has one; a provider that needs no key (quirks auth: none) is enabled by its base URL
    variable alone. Returns notes. What exists is read once and what is missing created in bulk
    (a few statements for the whole catalog, not a few per row)."""
    notes = []
    providers = add_missing_providers(catalog["providers"], notes)
    for entry in catalog["providers"]:
        configure_from_environment(providers[entry["slug"]], entry, environ, notes)
    add_missing_models(catalog["providers"], providers, notes)
    return notes


def add_missing_providers(entries: list[dict], notes: list[str]) -> dict[str, Provider]:
    providers = {provider.slug: provider for provider in Provider.objects.filter(slug__in=[e["slug"] for e in entries])}
    missing = [Provider(slug=entry["slug"], name=entry["name"], wire_format=entry["wire_format"],
                        base_url=entry.get("base_url", ""), quirks=entry.get("quirks", {}),
                        enabled=entry["wire_format"] == "demo", **{name: entry[name] for name in TIMEOUTS if name in entry})
               for entry in entries if entry["slug"] not in providers]
    for provider in Provider.objects.bulk_create(missing):
        notes.append(f"added provider {provider.slug}")
    if missing:  # read back: bulk_create sets no primary key on every database
        providers = {provider.slug: provider for provider in
                     Provider.objects.filter(slug__in=[entry["slug"] for entry in entries])}
    return providers


def configure_from_environment(provider: Provider, entry: dict, environ, notes: list[str]) -> None:
    slug = entry["slug"]
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
        store_keys(provider, keys, key_var, notes)


def store_keys(provider: Provider, keys: list[str], key_var: str, notes: list[str]) -> None:
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
        notes.append(f"{provider.slug}: disabled credentials no longer in {key_var}")
    if not provider.enabled:
        provider.enabled = True
        provider.save(update_fields=["enabled"])
    notes.append(f"{provider.slug}: enabled with {len(keys)} key(s) from {key_var}")


def add_missing_models(entries: list[dict], providers: dict[str, Provider], notes: list[str]) -> None:
    wanted = [model["id"] for entry in entries for model in entry.get("models", [])]
    existing = set(Model.objects.filter(public_id__in=wanted).values_list("public_id", flat=True))
    missing = []
    for entry in entries:
        for model in entry.get("models", []):
            if model["id"] not in existing:
                existing.add(model["id"])  # listed twice: the first entry counts
                missing.append(model_row(model, entry, providers[entry["slug"]]))
    Model.objects.bulk_create(missing)
    notes.extend(f"added model {model.public_id}" for model in missing)


def model_row(model: dict, entry: dict, provider: Provider) -> Model:
    capability = model.get("capability", "chat")
    return Model(
        public_id=model["id"], provider=provider, upstream_name=model["upstream"], capability=capability,
        group=model.get("group", ""), context_window=model.get("context_window", 128_000),
        max_output_tokens=model.get("max_output_tokens", 4096),
        input_price=Decimal(model.get("input", "0")), output_price=Decimal(model.get("output", "0")),
        cached_input_price=Decimal(model.get("cached_input", "0")),
        cache_write_price=Decimal(model["cache_write"]) if model.get("cache_write") else None,
        # A provider's features are its chat models'; never its media models'.
        features=model.get("features", entry.get("features", []) if capability == "chat" else []),
        **media_fields(model),
    )


# --- Azure OpenAI deployments (the admin's "Add Azure OpenAI deployment") -------------------------

AZURE_WIRE_FORMAT = "azure_openai"
# What "priced like" copies from the model named: what it is, its prices and what it accepts.
AZURE_COPIED_FIELDS = ("capability", "group", "context_window", "max_output_tokens", "input_price", "output_price",
                       "cached_input_price", "cache_write_price", "features", *MEDIA_PRICES.values(),
                       *MEDIA_TABLES.values())


def azure_provider_for(endpoint: str) -> Provider | None:
    """The Provider row of an Azure OpenAI resource, by its endpoint."""
    wanted = endpoint_of(endpoint)
    for provider in Provider.objects.filter(wire_format=AZURE_WIRE_FORMAT).order_by("pk"):
        if provider.base_url and endpoint_of(provider.base_url) == wanted:
            return provider
    return None


@transaction.atomic
def add_azure_deployment(*, endpoint: str, deployment: str, api_version: str, api_key: str = "",
                         serves: Model | None = None, public_id: str = "", priced_like: Model | None = None,
                         prices: dict[str, Decimal] | None = None, group: str = "") -> Model | Deployment:
    """Put an Azure OpenAI deployment in the catalog: its resource's Provider (found by endpoint;
    else the unconfigured catalog ``azure`` row, else a new ``azure-<resource>`` row), the key, the
    api-version (the resource's, or the deployment's own in quirks ``api_versions``), and either a
    Deployment of ``serves`` (sharing its traffic) or a Model ``public_id`` (default
    ``azure/<deployment>``) priced like ``priced_like`` or at ``prices``. Enables the provider."""
    provider = azure_provider_for(endpoint)
    if provider is None:
        provider = Provider.objects.filter(slug="azure", wire_format=AZURE_WIRE_FORMAT, base_url="").first()
    if provider is None:
        resource = slugify(httpx.URL(endpoint).host.split(".")[0]) or "resource"
        slug = next(s for s in (f"azure-{resource}", *(f"azure-{resource}-{n}" for n in range(2, 1000)))
                    if not Provider.objects.filter(slug=s).exists())
        provider = Provider(slug=slug, name=f"Azure OpenAI ({resource})", wire_format=AZURE_WIRE_FORMAT)
    quirks = dict(provider.quirks or {})
    per_deployment = dict(quirks.get("api_versions") or {})
    per_deployment.pop(deployment, None)
    if not provider.base_url or not quirks.get("api_version"):
        quirks["api_version"] = api_version
    elif quirks["api_version"] != api_version:
        per_deployment[deployment] = api_version
    if per_deployment:
        quirks["api_versions"] = per_deployment
    else:
        quirks.pop("api_versions", None)
    provider.base_url = endpoint_of(endpoint)
    provider.quirks, provider.enabled = quirks, True
    provider.save()
    if api_key:
        credential = Credential.objects.filter(provider=provider, label="admin").first() or Credential(
            provider=provider, label="admin")
        credential.set_secret(api_key)
        credential.enabled = True
        credential.save()
    elif not provider.credentials.filter(enabled=True).exists():
        raise ValidationError(f"{provider.slug} has no key yet: enter one of the resource's keys.")
    if serves is not None:
        row, _ = Deployment.objects.update_or_create(model=serves, provider=provider, upstream_name=deployment,
                                                     defaults={"enabled": True})
        return row
    fields = {name: getattr(priced_like, name) for name in AZURE_COPIED_FIELDS} if priced_like else {}
    fields.update({name: value for name, value in (prices or {}).items() if value is not None})
    if group:
        fields["group"] = group
    return Model.objects.create(public_id=public_id or f"azure/{deployment}", provider=provider,
                                upstream_name=deployment, **fields)
