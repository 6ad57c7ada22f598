"""Tenant commands in chat through the official openai SDK: ``/help`` to any admin/... model lists
them; ``admin/magic`` lists and deletes the tenant's stored responses and shows its month and its
models, for keys with the management scope only, never touching another tenant, and free."""

import openai
import pytest
from django.contrib.auth import get_user_model

from conversations.models import StoredResponse
from gateway.api_keys import issue_api_key
from tests.conftest import wait_for
from usage.models import UsageRecord

GPT = "openai/gpt-4o-mini"
MAGIC = "admin/magic"


def say(sdk, text: str, *, model: str = MAGIC, stream: bool = False) -> str:
    answer = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], stream=stream)
    if stream:
        return "".join(chunk.choices[0].delta.content or "" for chunk in answer if chunk.choices)
    return answer.choices[0].message.content


@pytest.fixture
def admin(sdk_for, tenant):
    """Alice's key with the management scope (an owner's)."""
    owner = get_user_model().objects.get(email="alice@example.com")
    return sdk_for(issue_api_key(tenant, name="alice admin", created_by=owner,
                                 scopes=["inference", "management"]).raw)


@pytest.fixture
def other_admin(sdk_for, other_tenant):
    return sdk_for(issue_api_key(other_tenant, name="charlie admin", scopes=["inference", "management"]).raw)


def stored(sdk, text: str) -> str:
    return sdk.responses.create(model=GPT, input=text).id


@pytest.mark.parametrize("stream", [False, True])
def test_help_to_any_admin_model_lists_the_commands(client, stream):
    text = say(client, "/help", model="admin/anything", stream=stream)
    assert text.startswith("Tenant commands: send one as your message to `admin/magic`.")
    for command in ("/responses", "/delete-responses", "/usage", "/models"):
        assert f"- `{command}`" in text


def test_stored_responses_are_listed_and_deleted_for_the_tenant_only(admin, other_admin, client, other_client,
                                                                     fake_openai, tenant, other_tenant):
    mine = [stored(client, "one"), stored(client, "two")]
    theirs = stored(other_client, "three")

    listing = say(admin, "/responses", stream=True)
    assert all(response_id in listing for response_id in mine) and theirs not in listing
    assert f"| {mine[1]} | {GPT} | completed |" in listing.splitlines()[2]  # newest first

    asked = say(admin, "/delete-responses")
    assert asked == ("This would delete all 2 stored responses of tenant alice-co, for good. Send "
                     "`/delete-responses confirm` to do it.")
    assert StoredResponse.objects.filter(tenant=tenant).count() == 2
    assert say(admin, "/delete-responses confirm") == "Deleted 2 stored responses."
    assert not StoredResponse.objects.filter(tenant=tenant).exists()
    assert list(StoredResponse.objects.filter(tenant=other_tenant).values_list("id", flat=True)) == [theirs]
    assert say(admin, "/responses") == "No stored responses."
    assert theirs in say(other_admin, "/responses")


def test_usage_and_models_are_the_tenants_own_and_cost_nothing(admin, client, other_client, fake_openai, tenant,
                                                               other_tenant):
    client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "hi"}])
    other_client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "hi"}])
    wait_for(lambda: UsageRecord.objects.count() == 2, what="both usage records")

    usage = say(admin, "/usage")
    assert "on plan Pro:" in usage and "of $250" in usage
    assert "- requests: 1;" in usage  # Alice's one, not Charlie's
    assert f"| {GPT} | 1 |" in usage
    assert "- seconds of video: 0 of 600" in usage and "- request rate: 600 per minute per key" in usage

    models = say(admin, "/models", stream=True)
    assert f"- `{GPT}` (chat)" in models and "- `demo/echo` (chat)" in models

    assert UsageRecord.objects.filter(tenant=tenant).count() == 1  # the commands left no record
    assert UsageRecord.objects.filter(tenant=other_tenant).count() == 1
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize("command", ["/responses", "/delete-responses confirm", "/usage", "/models"])
def test_keys_without_the_management_scope_are_refused(client, fake_openai, tenant, command):
    stored(client, "kept")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        say(client, command)
    assert refused.value.body["code"] == "missing_scope"
    assert "'management' scope" in refused.value.message
    assert StoredResponse.objects.filter(tenant=tenant).count() == 1


def test_unknown_commands_and_models_are_refused(admin):
    with pytest.raises(openai.BadRequestError) as unknown:
        say(admin, "/drop-tenant")
    assert unknown.value.body["code"] == "unknown_command" and "/usage" in unknown.value.message
    with pytest.raises(openai.NotFoundError) as no_model:
        say(admin, "/usage", model="admin/other")
    assert no_model.value.body["code"] == "model_not_found" and "admin/magic" in no_model.value.message
