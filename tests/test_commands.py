"""The operator's commands: bootstrap, create_tenant, create_api_key."""

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from billing.models import Plan, Subscription
from gateway.models import ApiKey, Membership, Tenant
from providers.models import Credential, Model, Provider


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_bootstrap_is_idempotent_and_enables_providers_with_a_key(transactional_db, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-one,sk-two")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    run("bootstrap")
    counts = (Provider.objects.count(), Model.objects.count(), Plan.objects.count(), Tenant.objects.count())
    assert "added" not in run("bootstrap").replace("catalog, plans", "")
    assert (Provider.objects.count(), Model.objects.count(), Plan.objects.count(), Tenant.objects.count()) == counts
    assert set(Plan.objects.values_list("slug", flat=True)) == {"free", "payg", "basic", "pro", "enterprise"}
    assert Subscription.objects.get(tenant__slug="demo").plan.slug == "free"
    openai_provider = Provider.objects.get(slug="openai")
    assert openai_provider.enabled and openai_provider.base_url == "http://127.0.0.1:9/v1"
    credentials = Credential.objects.filter(provider=openai_provider).order_by("label")
    assert [c.get_secret() for c in credentials] == ["sk-one", "sk-two"]
    assert "sk-one" not in credentials[0].secret_encrypted  # encrypted at rest
    assert Model.objects.get(public_id="openai/gpt-4o-mini").input_price == Decimal("0.15")


def test_bootstrap_leaves_providers_without_a_key_disabled(transactional_db, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run("bootstrap")
    assert not Provider.objects.get(slug="openai").enabled
    assert Provider.objects.get(slug="demo").enabled


def test_create_tenant_with_owner_and_plan(catalog):
    output = run("create_tenant", "acme", "--plan", "pro", "--owner-email", "a@example.com")
    assert "Created tenant acme on plan Pro" in output
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.subscription.plan.slug == "pro"
    assert Membership.objects.get(tenant=tenant).user.email == "a@example.com"
    assert Membership.objects.get(tenant=tenant).role == "owner"


@pytest.mark.parametrize(("args", "message"), [
    (["acme", "--plan", "platinum"], "No plan 'platinum'. Plans: free, basic, payg, pro, enterprise"),
    (["Not A Slug"], "lowercase letters"),
])
def test_create_tenant_explains_bad_input(catalog, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_tenant", *args)


def test_create_api_key_prints_a_working_key_alone_on_the_last_line(sdk_for, catalog):
    run("create_tenant", "acme", "--plan", "pro")
    output = run("create_api_key", "acme", "--name", "ci")
    raw = output.strip().splitlines()[-1]
    assert raw.startswith("tg-") and " " not in raw
    assert ApiKey.objects.get(tenant__slug="acme").name == "ci"
    client = sdk_for(raw)
    assert client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "hi"}])


def test_create_api_key_refuses_past_the_plans_key_limit(catalog):
    run("create_tenant", "tiny", "--plan", "free")
    run("create_api_key", "tiny", "--name", "one")
    run("create_api_key", "tiny", "--name", "two")
    with pytest.raises(CommandError, match="most plan Free allows"):
        run("create_api_key", "tiny", "--name", "three")


def test_create_api_key_for_unknown_tenant_says_how_to_create_it(catalog):
    with pytest.raises(CommandError, match="create_tenant ghost"):
        run("create_api_key", "ghost", "--name", "x")
