"""Variations of an image through POST /v1/images/variations, called with the official SDK's
``images.create_variation``: dall-e-2 (the one model whose catalog row declares variations) against
the fake OpenAI Images API, billed per image like a generation."""

import base64
from decimal import Decimal

import httpx
import openai
import pytest

from media.models import MediaFile
from tests.conftest import wait_for
from tests.fakes.openai_images import ImageReply
from tests.fakes.png import make_png, png_size
from usage.models import MonthlySpend, UsageRecord

# The SDK marks variations deprecated (OpenAI retired dall-e-2); other hosts of the route remain.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")


def variation_requests(fake_openai) -> list[dict]:
    return [r for r in fake_openai.requests if r.get("path") == "/v1/images/variations"]


def record_of(raw) -> UsageRecord:
    return wait_for(lambda: UsageRecord.objects.filter(request_id=raw.headers["x-tollgate-request-id"]).first(),
                    what="the usage record")


def test_dall_e_2_makes_variations_billed_per_image(client, other_client, fake_openai, tenant, other_tenant,
                                                    gateway_url):
    image = make_png(8, 8)
    raw = client.images.with_raw_response.create_variation(model="openai/dall-e-2", image=("cat.png", image, "image/png"),
                                                           n=2, size="512x512", user="end-user-9")
    answer = raw.parse()

    assert len(answer.data) == 2
    for made in answer.data:
        assert made.url.startswith(f"{gateway_url}/v1/media/") and "signature=" in made.url
        assert png_size(httpx.get(made.url).content) == (4, 4)
    [sent] = variation_requests(fake_openai)
    assert sent["body"] == {"model": "dall-e-2", "n": "2", "size": "512x512", "response_format": "b64_json",
                            "user": "end-user-9"}
    assert [(f["field"], f["filename"], f["content"]) for f in sent["files"]] == [("image", "cat.png", image)]

    record = record_of(raw)
    assert (record.tenant_id, record.model, record.capability) == (tenant.pk, "openai/dall-e-2", "image")
    assert (record.images, record.media_detail, record.cost) == (2, "512x512/standard", Decimal("0.036"))
    assert record.reserved == Decimal("0.036")
    assert record.end_user == "end-user-9"  # the request's user, on its record
    assert MonthlySpend.objects.get(tenant=tenant).images == 2
    stored = MediaFile.objects.filter(tenant=tenant)
    assert stored.count() == 2 and {file.request_id for file in stored} == {record.request_id}

    # Charlie's key sees none of it.
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{stored.first().id}", cast_to=object)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
    assert not MediaFile.objects.filter(tenant=other_tenant).exists()


def test_a_variation_can_answer_the_bytes_inline_at_the_default_size(client, fake_openai, tenant):
    answer = client.images.create_variation(model="openai/dall-e-2", image=("cat.png", make_png(), "image/png"),
                                            response_format="b64_json")
    assert png_size(base64.b64decode(answer.data[0].b64_json)) == (4, 4)
    assert variation_requests(fake_openai)[0]["body"]["size"] == "1024x1024"
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.images, record.media_detail, record.cost) == (1, "1024x1024/standard", Decimal("0.020"))


@pytest.mark.parametrize(("arguments", "param", "said"), [
    ({"model": "openai/dall-e-3"}, "model", "'openai/dall-e-3' makes no variations of an image"),
    ({"model": "openai/gpt-image-1"}, "model", "'openai/gpt-image-1' makes no variations of an image"),
    ({"size": "1792x1024"}, "size", "size '1792x1024' is not available for 'openai/dall-e-2'; use one of: 256x256"),
    ({"n": 11}, "n", "n must be between 1 and 10 for 'openai/dall-e-2', not 11"),
    ({"response_format": "png"}, "response_format", "use one of: url, b64_json"),
    ({"extra_body": {"prompt": "a hat"}}, "prompt", "A variation takes no prompt"),
    ({"extra_body": {"quality": "hd"}}, "quality", "'openai/dall-e-2' does not take 'quality'"),
])
def test_what_the_model_cannot_do_is_refused_before_any_call(client, fake_openai, tenant, arguments, param, said):
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.create_variation(**{"model": "openai/dall-e-2", "image": ("cat.png", make_png(), "image/png"),
                                          **arguments})
    assert refused.value.body["param"] == param
    assert said in refused.value.message
    assert variation_requests(fake_openai) == []
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_the_image_is_required_and_multipart(api_key, gateway_url, fake_openai, tenant):
    headers = {"Authorization": f"Bearer {api_key}"}
    no_image = httpx.post(f"{gateway_url}/v1/images/variations", headers=headers, data={"model": "openai/dall-e-2"},
                          files={"other": ("x.png", make_png())})
    assert no_image.status_code == 400 and no_image.json()["error"]["param"] == "image"
    as_json = httpx.post(f"{gateway_url}/v1/images/variations", headers=headers, json={"model": "openai/dall-e-2"})
    assert as_json.status_code == 400 and as_json.json()["error"]["code"] == "invalid_content_type"
    assert variation_requests(fake_openai) == []


def test_an_image_the_provider_refuses_costs_nothing(client, fake_openai, tenant):
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.create_variation(model="openai/dall-e-2", image=("wide.png", make_png(8, 4), "image/png"))
    assert "square" in refused.value.message
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.images, record.cost) == (0, 0)
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0
    assert not MediaFile.objects.filter(tenant=tenant).exists()


def test_a_failed_variation_gives_the_reservation_back(client, fake_openai, tenant):
    fake_openai.enqueue(*[ImageReply(status=500, error_type="server_error")] * 3)
    with pytest.raises(openai.InternalServerError):
        client.images.create_variation(model="openai/dall-e-2", image=("cat.png", make_png(), "image/png"), n=3)
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.images, record.cost, record.reserved) == (0, 0, Decimal("0.060"))
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled, ledger.images) == (0, 0, 0)
