"""models.list() shows only what the tenant's plan (and key) allows, with capability and prices."""

import openai
import pytest

from billing.models import Plan
from gateway import api_keys
from gateway.api_keys import issue_api_key
from providers.models import Model
from tests.conftest import make_tenant, serve_provider_from


def test_pro_plan_lists_its_models_with_capability_and_prices(client):
    models = {m.id: m for m in client.models.list()}
    assert "demo/echo" in models and "openai/gpt-4o-mini" in models and "openai/gpt-5" in models
    mini = models["openai/gpt-4o-mini"].model_dump()
    assert mini["capability"] == "chat"
    assert mini["owned_by"] == "openai"
    assert mini["pricing"] == {"currency": "USD", "unit": "per_million_tokens", "input": "0.150000",
                               "output": "0.600000", "cached_input": "0.075000"}
    assert mini["context_window"] == 128000


def test_free_plan_lists_only_the_demo_model(sdk_for, catalog):
    free = make_tenant("freebie", "f@example.com", "free")
    client = sdk_for(issue_api_key(free, name="k").raw)
    assert [m.id for m in client.models.list()] == ["demo/echo"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("openai/gpt-4o")


def test_key_limited_to_some_models_lists_only_those(sdk_for, tenant):
    key = issue_api_key(tenant, name="narrow", allowed_models=["openai/gpt-4.1*"]).raw
    client = sdk_for(key)
    assert sorted(m.id for m in client.models.list()) == ["openai/gpt-4.1", "openai/gpt-4.1-mini", "openai/gpt-4.1-nano"]


def test_plan_change_in_the_admin_shows_in_models_list(client, tenant):
    Plan.objects.filter(slug="pro").update(allowed_model_groups=[], allowed_models=["demo/*"])
    api_keys.forget_keys()  # what KEY_CACHE_SECONDS does on its own
    assert [m.id for m in client.models.list()] == ["demo/echo"]


def test_retrieve_a_model_by_its_public_id(client):
    model = client.models.retrieve("openai/gpt-4o-mini")
    assert model.id == "openai/gpt-4o-mini"


CHAT_FEATURES = {"tools", "vision", "json_schema", "reasoning", "image_output"}


def test_media_models_list_their_own_capability_and_no_chat_features(client, catalog):
    serve_provider_from("gemini", "http://127.0.0.1:9", "gemini-key")  # listing calls nothing
    # As an older bootstrap left them: the provider's chat features copied onto its media models.
    Model.objects.filter(public_id="gemini/imagen-4.0-generate-001").update(features=["tools", "vision"])
    models = {m.id: m.model_dump() for m in client.models.list()}
    for public_id, capability in [("gemini/gemini-2.5-flash-preview-tts", "speech"),
                                  ("gemini/imagen-4.0-generate-001", "image"),
                                  ("gemini/veo-3.1-generate-preview", "video"),
                                  ("openai/whisper-1", "transcription")]:
        assert (models[public_id]["capability"], models[public_id]["features"]) == (capability, [])
    assert client.models.retrieve("gemini/imagen-4.0-generate-001").model_dump()["features"] == []
    assert models["gemini/gemini-2.5-pro"]["features"] == ["json_schema", "reasoning", "tools", "vision"]
    assert models["gemini/gemini-2.5-flash-image"]["features"] == ["image_output", "vision"]


def test_every_chat_model_lists_its_features(client):
    models = {m.id: m.model_dump() for m in client.models.list()}
    assert models["openai/gpt-4o-mini"]["features"] == ["json_schema", "tools", "vision"]
    assert models["openai/gpt-5"]["features"] == ["json_schema", "reasoning", "tools", "vision"]
    # A model that declares none is refused none: every feature a request can ask for.
    assert models["demo/echo"]["features"] == ["json_schema", "reasoning", "tools", "vision"]
    chat = [m for m in models.values() if m["capability"] == "chat"]
    assert chat and all(m["features"] and set(m["features"]) <= CHAT_FEATURES for m in chat)
