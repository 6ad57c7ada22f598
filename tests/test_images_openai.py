"""OpenAI's image models through /v1/images, called with the official SDK: dall-e-2, dall-e-3 (one
image, its sizes) and the GPT image models (token usage), against the fake OpenAI Images API."""

import base64
from decimal import Decimal

import httpx
import openai
import pytest

from media.models import MediaFile
from providers import router
from providers.models import Provider
from tests.fakes.openai_images import ImageReply
from tests.fakes.openai_upstream import Reply
from tests.fakes.png import make_png, png_size
from usage.models import MonthlySpend, UsageRecord


def record_of(raw) -> UsageRecord:
    return UsageRecord.objects.get(request_id=raw.headers["x-tollgate-request-id"])


def image_requests(fake_openai) -> list[dict]:
    return [r for r in fake_openai.requests if r.get("path", "").startswith("/v1/images/")]


def test_dall_e_3_answers_our_signed_url_and_bills_its_size_and_quality(client, other_client, fake_openai, tenant,
                                                                         other_tenant, gateway_url):
    raw = client.images.with_raw_response.generate(model="openai/dall-e-3", prompt="a lighthouse at dusk",
                                                   size="1792x1024", quality="hd", style="natural")
    answer = raw.parse()

    image = answer.data[0]
    assert image.url.startswith(f"{gateway_url}/v1/media/") and "signature=" in image.url
    assert image.revised_prompt == "A revised prompt from the fake."
    content = httpx.get(image.url)  # the signed URL is its own credential: no API key
    assert content.status_code == 200 and content.headers["content-type"] == "image/png"
    assert png_size(content.content) == (4, 4)
    sent = image_requests(fake_openai)[0]["body"]
    assert sent == {"model": "dall-e-3", "prompt": "a lighthouse at dusk", "n": 1, "size": "1792x1024",
                    "quality": "hd", "style": "natural", "response_format": "b64_json"}

    record = record_of(raw)
    assert (record.tenant_id, record.model, record.capability) == (tenant.pk, "openai/dall-e-3", "image")
    assert (record.images, record.media_detail, record.cost) == (1, "1792x1024/hd", Decimal("0.12"))
    assert Decimal(raw.headers["x-tollgate-cost"]) == Decimal("0.12")
    stored = MediaFile.objects.get(tenant=tenant)
    assert (stored.kind, stored.request_id, stored.size) == ("image", record.request_id, len(content.content))

    # Charlie's key cannot see Alice's image, nor her usage.
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{stored.id}", cast_to=object)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
    assert not MediaFile.objects.filter(tenant=other_tenant).exists()


def test_dall_e_3_refuses_more_than_one_image_and_other_sizes_before_calling_openai(client, fake_openai, tenant):
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="openai/dall-e-3", prompt="two cats", n=2)
    assert refused.value.body["param"] == "n"
    assert "n must be 1 for 'openai/dall-e-3'" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="openai/dall-e-3", prompt="a cat", size="512x512")
    assert refused.value.body["param"] == "size"
    assert "use one of: 1024x1024, 1792x1024, 1024x1792" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="openai/dall-e-3", prompt="a cat", quality="high")
    assert "use one of: standard, hd" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="openai/dall-e-2", prompt="a cat", style="vivid")
    assert "'openai/dall-e-2' does not take style" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="openai/dall-e-3", prompt="a cat", extra_body={"seed": 7})
    assert "does not take 'seed'" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="openai/gpt-4o-mini", prompt="a cat")
    assert "is a chat model" in refused.value.message

    assert image_requests(fake_openai) == []
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_gpt_image_is_billed_by_the_tokens_it_reports(client, other_client, fake_openai, tenant):
    raw = client.images.with_raw_response.generate(model="openai/gpt-image-1", prompt="a red fox in the snow",
                                                   response_format="b64_json",
                                                   extra_body={"background": "transparent"})
    answer = raw.parse()

    assert png_size(base64.b64decode(answer.data[0].b64_json)) == (4, 4)
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (6, 4160)
    sent = image_requests(fake_openai)[0]["body"]
    # GPT image models refuse response_format; quality and size "auto" are theirs to pick.
    assert sent == {"model": "gpt-image-1", "prompt": "a red fox in the snow", "n": 1, "size": "auto",
                    "quality": "auto", "background": "transparent"}
    record = record_of(raw)
    assert (record.images, record.media_detail) == (1, "1024x1024/high")
    assert (record.input_tokens, record.output_tokens) == (6, 4160)
    assert record.cost == (6 * Decimal("5.00") + 4160 * Decimal("40.00")) / 1_000_000
    # The reservation covered the priciest outcome of "auto" (1024x1536 high), then gave the rest back.
    assert record.reserved == (len(b"a red fox in the snow") * Decimal("5.00") + 6240 * Decimal("40.00")) / 1_000_000
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled, ledger.images) == (0, record.cost, 1)
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{MediaFile.objects.get(tenant=tenant).id}", cast_to=object)


def test_dall_e_2_makes_several_images_and_a_provider_url_is_copied_at_once(client, fake_openai, tenant):
    Provider.objects.filter(slug="openai").update(quirks={"images_response_format": "url"})
    router.forget_catalog()
    raw = client.images.with_raw_response.generate(model="openai/dall-e-2", prompt="three moons", n=3,
                                                   size="256x256")
    answer = raw.parse()

    assert len(answer.data) == 3
    assert image_requests(fake_openai)[0]["body"]["response_format"] == "url"
    fake_openai.image_files.clear()  # the provider's URLs expire: ours do not depend on them
    for image in answer.data:
        assert png_size(httpx.get(image.url).content) == (4, 4)
    record = record_of(raw)
    assert (record.images, record.media_detail, record.cost) == (3, "256x256/standard", Decimal("0.048"))
    assert MediaFile.objects.filter(tenant=tenant).count() == 3


def test_gpt_image_edits_several_images_sent_as_multipart(client, fake_openai, tenant):
    raw = client.images.with_raw_response.edit(
        model="openai/gpt-image-1-mini", prompt="put them side by side", size="1024x1024", quality="low",
        image=[("a.png", make_png(2, 2), "image/png"), ("b.png", make_png(3, 3), "image/png")])
    answer = raw.parse()

    assert len(answer.data) == 1
    sent = image_requests(fake_openai)[0]
    assert sent["path"] == "/v1/images/edits"
    assert [(f["field"], f["filename"], f["content"]) for f in sent["files"]] == [
        ("image[]", "a.png", make_png(2, 2)), ("image[]", "b.png", make_png(3, 3))]
    assert sent["body"] == {"model": "gpt-image-1-mini", "prompt": "put them side by side", "n": "1",
                            "size": "1024x1024", "quality": "low"}
    record = record_of(raw)
    assert (record.images, record.media_detail) == (1, "1024x1024/low")
    assert (record.input_tokens, record.output_tokens) == (5 + 2 * 323, 272)
    assert record.cost == ((5 + 2 * 323) * Decimal("2.00") + 272 * Decimal("8.00")) / 1_000_000


def test_dall_e_2_edit_with_a_mask_and_dall_e_3_refusing_edits(client, fake_openai, tenant):
    answer = client.images.edit(model="openai/dall-e-2", prompt="add a hat", image=("cat.png", make_png(), "image/png"),
                                mask=("mask.png", make_png(), "image/png"), size="512x512")
    assert len(answer.data) == 1
    sent = image_requests(fake_openai)[0]
    assert [(f["field"], f["filename"]) for f in sent["files"]] == [("image", "cat.png"), ("mask", "mask.png")]

    with pytest.raises(openai.BadRequestError) as refused:
        client.images.edit(model="openai/dall-e-3", prompt="add a hat", image=("cat.png", make_png(), "image/png"))
    assert "'openai/dall-e-3' does not edit images" in refused.value.message
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.edit(model="openai/dall-e-2", prompt="merge",
                           image=[("a.png", make_png(), "image/png"), ("b.png", make_png(), "image/png")])
    assert "edits at most 1 image(s) at once, not 2" in refused.value.message
    assert len(image_requests(fake_openai)) == 1


def test_a_failed_generation_costs_nothing_and_gives_the_reservation_back(client, fake_openai, tenant):
    fake_openai.enqueue(*[ImageReply(status=500, error_type="server_error")] * 3)
    with pytest.raises(openai.InternalServerError):
        client.images.generate(model="openai/dall-e-3", prompt="a storm", quality="hd")

    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.images, record.cost, record.http_status) == (0, 0, 502)
    assert record.reserved == Decimal("0.08")
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled, ledger.images) == (0, 0, 0)
    assert not MediaFile.objects.filter(tenant=tenant).exists()


def test_a_provider_refusal_is_the_clients_400(client, fake_openai, tenant):
    fake_openai.enqueue(Reply(status=400, error_type="invalid_request_error", error_code="content_policy_violation",
                              error_message="Your request was rejected by the safety system."))
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="openai/dall-e-2", prompt="something refused")
    assert refused.value.code == "content_filter"
    assert UsageRecord.objects.get(tenant=tenant).cost == 0
