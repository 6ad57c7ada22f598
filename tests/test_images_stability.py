"""Stability AI (v2beta Stable Image: Ultra, Core, SD 3.5) through /v1/images with the official SDK,
against a fake speaking its multipart wire format."""

from decimal import Decimal

import httpx
import openai
import pytest

from media.models import MediaFile
from tests.fakes.png import make_png, png_size
from tests.fakes.stability_upstream import Reply
from usage.models import MonthlySpend, UsageRecord


def record_of(raw) -> UsageRecord:
    return UsageRecord.objects.get(request_id=raw.headers["x-tollgate-request-id"])


def test_core_turns_a_size_into_its_aspect_ratio_and_bills_per_image(client, other_client, fake_stability, tenant,
                                                                        other_tenant):
    raw = client.images.with_raw_response.generate(
        model="stability/stable-image-core", prompt="a lighthouse", size="1344x768",
        extra_body={"seed": 7, "negative_prompt": "fog", "style_preset": "photographic"})
    answer = raw.parse()

    sent = fake_stability.requests[0]
    assert (sent["route"], sent["content_type"], sent["headers"]["Accept"]) == (
        "core", "multipart/form-data", "application/json")
    assert sent["fields"] == {"prompt": "a lighthouse", "aspect_ratio": "16:9", "seed": "7", "negative_prompt": "fog",
                              "style_preset": "photographic"}
    assert png_size(httpx.get(answer.data[0].url).content) == (6, 6)
    record = record_of(raw)
    assert (record.provider, record.upstream_model) == ("stability", "core")
    assert (record.images, record.media_detail, record.cost) == (1, "1344x768", Decimal("0.03"))
    assert MonthlySpend.objects.get(tenant=tenant).images == 1
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{MediaFile.objects.get(tenant=tenant).id}", cast_to=object)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_an_aspect_ratio_picks_the_size_and_sd3_models_name_themselves(client, fake_stability, tenant):
    raw = client.images.with_raw_response.generate(model="stability/stable-image-ultra", prompt="tall tower",
                                                   extra_body={"aspect_ratio": "9:16"})
    assert record_of(raw).media_detail == "768x1344"
    assert record_of(raw).cost == Decimal("0.08")
    assert fake_stability.requests[0]["fields"]["aspect_ratio"] == "9:16"

    raw = client.images.with_raw_response.generate(model="stability/sd3.5-large", prompt="a garden",
                                                   output_format="jpeg", response_format="b64_json",
                                                   extra_body={"guidance_scale": 4.5})
    sent = fake_stability.requests[1]
    assert sent["route"] == "sd3"
    assert sent["fields"] == {"prompt": "a garden", "model": "sd3.5-large", "output_format": "jpeg",
                              "aspect_ratio": "1:1", "cfg_scale": "4.5"}
    assert raw.parse().data[0].b64_json
    assert MediaFile.objects.filter(tenant=tenant, content_type="image/jpeg").count() == 1
    assert record_of(raw).cost == Decimal("0.065")


def test_what_stability_does_not_take_is_refused_with_what_it_does(client, fake_stability, tenant):
    cases = [
        (dict(model="stability/stable-image-core", prompt="x", n=2), "n must be 1 for 'stability/stable-image-core'"),
        (dict(model="stability/stable-image-core", prompt="x", size="512x512"),
         "use one of: 1024x1024, 896x1088, 1088x896, 832x1216, 1216x832, 768x1344, 1344x768, 640x1536, 1536x640"),
        (dict(model="stability/stable-image-core", prompt="x", quality="hd"), "does not take quality"),
        (dict(model="stability/sd3.5-medium", prompt="x", output_format="webp"), "use one of: png, jpeg"),
        (dict(model="stability/stable-image-ultra", prompt="x", extra_body={"style_preset": "anime"}),
         "does not take 'style_preset' (it takes: seed, negative_prompt)"),
        (dict(model="stability/stable-image-ultra", prompt="x", extra_body={"aspect_ratio": "7:5"}),
         "aspect_ratio '7:5' is not available"),
        (dict(model="stability/stable-image-ultra", prompt="x", size="1024x1024", extra_body={"aspect_ratio": "16:9"}),
         "size 1024x1024 is 1:1, not aspect_ratio 16:9"),
        (dict(model="stability/stable-image-ultra", prompt=""), "prompt is required"),
    ]
    for arguments, message in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.generate(**arguments)
        assert message in refused.value.message, arguments
    assert fake_stability.requests == []
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_sd3_edits_image_to_image_and_core_does_not_edit(client, fake_stability, tenant):
    answer = client.images.edit(model="stability/sd3.5-medium", prompt="make it autumn",
                                image=("park.png", make_png(3, 3), "image/png"))
    assert len(answer.data) == 1
    sent = fake_stability.requests[0]
    assert sent["fields"] == {"prompt": "make it autumn", "model": "sd3.5-medium", "strength": "0.7",
                              "mode": "image-to-image"}
    assert sent["files"] == {"image": make_png(3, 3)}
    assert UsageRecord.objects.get(tenant=tenant).cost == Decimal("0.035")

    with pytest.raises(openai.BadRequestError) as refused:
        client.images.edit(model="stability/stable-image-core", prompt="x", image=("a.png", make_png(), "image/png"))
    assert "does not edit images" in refused.value.message


def test_filtered_and_failed_generations_cost_nothing(client, fake_stability, tenant):
    fake_stability.enqueue(Reply(finish_reason="CONTENT_FILTERED"))
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="stability/stable-image-core", prompt="something filtered")
    assert refused.value.code == "content_filter"

    fake_stability.enqueue(Reply(status=402, name="payment_required", errors=["lacks sufficient credits"]))
    with pytest.raises(openai.InternalServerError) as failed:
        client.images.generate(model="stability/stable-image-core", prompt="no credits")
    assert failed.value.status_code == 502
    assert "out of credits" in failed.value.message and "an operator must top it up" in failed.value.message

    records = UsageRecord.objects.filter(tenant=tenant)
    assert [(r.images, r.cost, r.http_status) for r in records.order_by("created_at")] == [(0, 0, 400), (0, 0, 502)]
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.images, ledger.reserved, ledger.settled) == (0, 0, 0)
