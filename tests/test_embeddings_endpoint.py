"""POST /v1/embeddings and /v1/moderations through the official openai SDK: the tenant's key, plan
and bill, the provider's token count on exactly one usage record, vectors as the SDK decodes them
(its default is base64), and refusals before any provider call."""

from decimal import Decimal

import openai
import pytest

from billing.models import Plan
from tests.fakes.openai_embeddings import fake_vector
from usage.models import UsageRecord

MODEL = "openai/text-embedding-3-small"


def embedding_calls(fake) -> list[dict]:
    return [request for request in fake.requests if request["path"].endswith("/embeddings")]


def test_embeddings_come_back_in_order_and_are_billed_once_at_the_providers_count(client, fake_openai, tenant):
    texts = ["the cat sat", "a dog", "birds sing loudly today"]
    answer = client.embeddings.create(model=MODEL, input=texts, user="user-7")
    assert [item.embedding for item in answer.data] == [fake_vector(text, 1536) for text in texts]
    assert [item.index for item in answer.data] == [0, 1, 2]
    assert (answer.model, answer.usage.prompt_tokens, answer.usage.total_tokens) == (MODEL, 9, 9)
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.model, record.provider, record.input_tokens, record.output_tokens) == (MODEL, "openai", 9, 0)
    assert record.cost == Decimal("0.02") * 9 / 1_000_000
    assert not record.usage_estimated


def test_float_encoding_and_dimensions_reach_the_provider(client, fake_openai, tenant):
    answer = client.embeddings.create(model=MODEL, input="alpha beta", dimensions=8, encoding_format="float")
    assert answer.data[0].embedding == fake_vector("alpha beta", 8)
    assert embedding_calls(fake_openai)[-1]["body"]["dimensions"] == 8


def test_dimensions_a_model_cannot_make_are_refused_before_any_call(client, fake_openai, tenant):
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="openai/text-embedding-ada-002", input="alpha", dimensions=256)
    assert refused.value.body["param"] == "dimensions"
    assert "fixed size" in refused.value.message
    assert embedding_calls(fake_openai) == []
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_a_chat_model_named_at_embeddings_says_where_to_call_it(client, fake_openai, tenant):
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="openai/gpt-4o-mini", input="alpha")
    assert refused.value.code == "wrong_endpoint"


def test_a_plan_without_embeddings_is_refused_before_any_call(client, fake_openai, tenant):
    Plan.objects.filter(slug="pro").update(allowed_capabilities=["chat"])
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.embeddings.create(model=MODEL, input="alpha")
    assert refused.value.code == "capability_not_on_plan"
    assert embedding_calls(fake_openai) == []


@pytest.mark.parametrize(("body", "param"), [
    ({"model": MODEL}, "input"),
    ({"model": MODEL, "input": []}, "input"),
    ({"model": MODEL, "input": ["a", [1, 2]]}, "input"),
    ({"model": MODEL, "input": "a", "encoding_format": "int8"}, "encoding_format"),
    ({"model": MODEL, "input": "a", "dimensions": 0}, "dimensions"),
])
def test_malformed_bodies_get_a_400_naming_the_field(http, body, param):
    answer = http.post("/embeddings", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


def test_an_outsider_key_is_refused(sdk_for, fake_openai, tenant):
    with pytest.raises(openai.AuthenticationError):
        sdk_for("tg-nope-nothing").embeddings.create(model=MODEL, input="alpha")
    assert embedding_calls(fake_openai) == []


def test_models_can_be_listed_by_capability_and_with_post(http, tenant):
    listed = http.get("/models", params={"capability": "embedding"}).json()["data"]
    assert listed and {model["id"] for model in listed} >= {MODEL} and all(
        model["id"] != "openai/gpt-4o-mini" for model in listed)
    assert http.post("/models").json()["data"] == http.get("/models").json()["data"]


def test_moderation_answers_in_openais_shape_and_is_recorded(client, fake_openai, tenant):
    answer = client.moderations.create(model="openai/omni-moderation-latest", input=["hello there", "second"])
    assert len(answer.results) == 2
    assert isinstance(answer.results[0].flagged, bool)
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.model, record.cost) == ("openai/omni-moderation-latest", Decimal(0))
    assert record.input_tokens > 0


def test_moderation_without_a_model_uses_the_default(client, fake_openai, tenant):
    answer = client.moderations.create(input="hello")
    assert answer.model == "openai/omni-moderation-latest"


def test_an_unknown_capability_is_a_400_naming_the_known_ones(http, tenant):
    answer = http.get("/models", params={"capability": "embeddings"})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "capability" and "embedding" in answer.json()["error"]["message"]


def test_a_negative_token_id_is_refused_before_any_call(client, fake_openai, tenant):
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=MODEL, input=[1, -5])
    assert "negative token id" in refused.value.message
    assert embedding_calls(fake_openai) == []
