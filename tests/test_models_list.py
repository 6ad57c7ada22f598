"""models.list() shows only what the tenant's plan (and key) allows, with capability and prices."""

import openai
import pytest

from billing.models import Plan
from gateway import api_keys
from gateway.api_keys import issue_api_key
from tests.conftest import make_tenant


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
