"""One public model, several deployments: priorities in order, weights sharing the traffic."""

import openai
import pytest

from providers import router
from providers.models import Deployment, Model
from tests.conftest import serve_provider_from
from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def second_provider(catalog, fake_openai, settings):
    """Groq, pointed at the same fake, serving openai/gpt-4o-mini under its own model name."""
    settings.UPSTREAM_MAX_RETRIES = 0
    groq = serve_provider_from("groq", fake_openai.base_url)

    def deploy(priority: int, weight: int = 1) -> None:
        Deployment.objects.create(model=Model.objects.get(public_id="openai/gpt-4o-mini"), provider=groq,
                                  upstream_name="gpt-4o-mini-on-groq", priority=priority, weight=weight)
        router.forget_catalog()

    return deploy


def test_a_lower_priority_deployment_serves_when_the_first_fails(client, fake_openai, second_provider, tenant):
    second_provider(priority=1)
    fake_openai.enqueue(Reply(status=503), Reply(text="served by the second deployment"))
    answer = client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    assert answer.choices[0].message.content == "served by the second deployment"
    assert answer.model == "openai/gpt-4o-mini"  # the same public model, whoever served it
    assert [r["body"]["model"] for r in fake_openai.requests] == ["gpt-4o-mini", "gpt-4o-mini-on-groq"]
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.model, record.provider, record.upstream_model) == ("openai/gpt-4o-mini", "groq",
                                                                     "gpt-4o-mini-on-groq")


def test_deployments_of_one_priority_share_traffic_by_weight(client, fake_openai, second_provider):
    second_provider(priority=0, weight=3)
    for _ in range(8):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    served = [r["body"]["model"] for r in fake_openai.requests]
    assert served.count("gpt-4o-mini-on-groq") == 6 and served.count("gpt-4o-mini") == 2


def test_a_client_error_does_not_move_to_another_deployment(client, fake_openai, second_provider):
    second_provider(priority=1)
    fake_openai.enqueue(Reply(status=400, error_type="invalid_request_error"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    assert len(fake_openai.requests) == 1
