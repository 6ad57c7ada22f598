"""Operators run the catalog, plans, tenants and usage in the Django admin."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from providers.models import Credential, Provider
from tests.fakes.openai_upstream import Reply

PAGES = ["gateway_tenant", "gateway_membership", "gateway_apikey", "gateway_tenantproviderkey", "billing_plan", "billing_subscription",
         "providers_provider", "providers_credential", "providers_model", "usage_usagerecord", "usage_dailyusage",
         "usage_monthlyspend"]


@pytest.fixture
def operator(client_django):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-tests-only")
    client_django.force_login(user)
    return client_django


@pytest.fixture
def client_django(catalog):
    from django.test import Client
    return Client()


@pytest.mark.parametrize("page", PAGES)
def test_every_model_has_a_searchable_changelist(operator, api_key, page):
    response = operator.get(reverse(f"admin:{page}_changelist"), {"q": "a"})
    assert response.status_code == 200


def test_usage_history_is_read_only(operator):
    assert operator.get(reverse("admin:usage_usagerecord_add")).status_code == 403


def test_credential_secret_is_write_only_and_encrypted(operator):
    provider = Provider.objects.get(slug="openai")
    response = operator.post(reverse("admin:providers_credential_add"),
                             {"provider": provider.pk, "label": "second", "enabled": "on", "secret": "sk-secret-9876"})
    assert response.status_code == 302
    credential = Credential.objects.get(label="second")
    assert credential.get_secret() == "sk-secret-9876" and "sk-secret" not in credential.secret_encrypted
    page = operator.get(reverse("admin:providers_credential_change", args=[credential.pk])).content.decode()
    assert "sk-secret-9876" not in page and "9876" in page


def test_operator_probes_models_from_the_admin_and_sees_the_result(operator, fake_openai, settings):
    from providers.models import Model

    settings.UPSTREAM_MAX_RETRIES = 0
    fake_openai.enqueue(Reply(status=503, error_message="down for maintenance"))
    ids = list(Model.objects.filter(public_id__in=["openai/gpt-4o-mini", "demo/echo"]).values_list("pk", flat=True))
    response = operator.post(reverse("admin:providers_model_changelist"),
                             {"action": "probe_models", "_selected_action": ids}, follow=True)
    page = response.content.decode()
    assert "demo/echo (demo/echo): answered in" in page
    assert "openai/gpt-4o-mini (openai/gpt-4o-mini): openai returned 503: down for maintenance" in page
