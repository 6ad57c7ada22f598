"""Google's image models through /v1/images with the official SDK: Imagen 4 (``:predict``, per
image) and the Gemini image models (``generateContent``, by tokens), against the fake Gemini API."""

import base64
from decimal import Decimal

import httpx
import openai
import pytest

from media.models import MediaFile
from tests.fakes.gemini_images_upstream import Prediction
from tests.fakes.png import make_png, png_size
from usage.models import MonthlySpend, UsageRecord


def record_of(raw) -> UsageRecord:
    return UsageRecord.objects.get(request_id=raw.headers["x-tollgate-request-id"])


def test_imagen_makes_several_images_sized_by_ratio(client, other_client, fake_google_images, tenant, other_tenant):
    raw = client.images.with_raw_response.generate(model="gemini/imagen-4.0-generate-001", prompt="a red fox", n=3,
                                                   size="1408x768", output_format="jpeg",
                                                   extra_body={"image_size": "2K", "person_generation": "dont_allow"})
    answer = raw.parse()

    sent = fake_google_images.requests[0]
    assert (sent["model"], sent["action"], sent["headers"]["x-goog-api-key"]) == (
        "imagen-4.0-generate-001", "predict", fake_google_images.api_key)
    assert sent["body"] == {"instances": [{"prompt": "a red fox"}], "parameters": {
        "sampleCount": 3, "aspectRatio": "16:9", "outputOptions": {"mimeType": "image/jpeg"},
        "sampleImageSize": "2K", "personGeneration": "dont_allow"}}
    assert len(answer.data) == 3
    assert all(png_size(httpx.get(image.url).content) == (7, 7) for image in answer.data)
    record = record_of(raw)
    assert (record.images, record.media_detail, record.cost) == (3, "1408x768", Decimal("0.12"))
    assert MediaFile.objects.filter(tenant=tenant, content_type="image/jpeg").count() == 3
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{MediaFile.objects.filter(tenant=tenant).first().id}", cast_to=object)
    assert not MediaFile.objects.filter(tenant=other_tenant).exists()


def test_imagen_refuses_what_the_gemini_api_would(client, fake_google_images, tenant):
    cases = [
        (dict(n=5), "n must be between 1 and 4"),
        (dict(extra_body={"seed": 3}), "does not take 'seed'"),
        (dict(extra_body={"negative_prompt": "blur"}), "does not take 'negative_prompt'"),
        (dict(extra_body={"image_size": "4K"}), "image_size '4K' is not available for "
                                                "'gemini/imagen-4.0-generate-001'; use one of: 1K, 2K"),
        (dict(size="1024x1792"), "use one of: 1024x1024, 896x1280, 1280x896, 768x1408, 1408x768"),
    ]
    for arguments, message in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.generate(model="gemini/imagen-4.0-generate-001", prompt="x", **arguments)
        assert message in refused.value.message, arguments
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.edit(model="gemini/imagen-4.0-fast-generate-001", prompt="x",
                           image=("a.png", make_png(), "image/png"))
    assert "does not edit images" in refused.value.message
    assert fake_google_images.requests == []


def test_filtered_imagen_images_are_not_billed(client, fake_google_images, tenant):
    fake_google_images.enqueue(Prediction(filtered=1))
    raw = client.images.with_raw_response.generate(model="gemini/imagen-4.0-fast-generate-001", prompt="two", n=2)
    assert len(raw.parse().data) == 1
    assert (record_of(raw).images, record_of(raw).cost) == (1, Decimal("0.02"))

    fake_google_images.enqueue(Prediction(filtered=2))
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="gemini/imagen-4.0-fast-generate-001", prompt="none", n=2)
    assert refused.value.code == "content_filter"
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.images, ledger.settled, ledger.reserved) == (1, Decimal("0.02"), 0)


def test_a_gemini_image_model_draws_at_the_images_endpoint_billed_by_tokens(client, fake_google_images, tenant):
    raw = client.images.with_raw_response.generate(model="gemini/gemini-2.5-flash-image", prompt="a paper boat",
                                                   size="1344x768", response_format="b64_json",
                                                   extra_body={"seed": 11})
    answer = raw.parse()

    assert png_size(base64.b64decode(answer.data[0].b64_json)) == (5, 5)
    assert answer.data[0].revised_prompt == "Here is your picture."
    sent = fake_google_images.requests[0]
    assert (sent["model"], sent["action"]) == ("gemini-2.5-flash-image", "generateContent")
    assert sent["body"] == {"contents": [{"role": "user", "parts": [{"text": "a paper boat"}]}],
                            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                                                 "imageConfig": {"aspectRatio": "16:9"}, "seed": 11}}
    record = record_of(raw)
    # The fake bills as Gemini does: 1290 tokens for the image plus the words of its text part.
    assert (record.images, record.media_detail, record.output_tokens) == (1, "1344x768", 1290 + 4)
    assert record.cost == (record.input_tokens * Decimal("0.30") + 1294 * Decimal("30.00")) / 1_000_000
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (record.input_tokens, 1294)


def test_gemini_image_models_edit_and_take_an_image_size(client, fake_google_images, tenant):
    client.images.edit(model="gemini/gemini-2.5-flash-image", prompt="add a sail",
                       image=[("boat.png", make_png(2, 2), "image/png"), ("sail.png", make_png(3, 3), "image/png")])
    parts = fake_google_images.requests[0]["body"]["contents"][0]["parts"]
    assert parts == [{"text": "add a sail"},
                     {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(make_png(2, 2)).decode()}},
                     {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(make_png(3, 3)).decode()}}]

    raw = client.images.with_raw_response.generate(model="gemini/gemini-3-pro-image-preview", prompt="a map",
                                                   extra_body={"image_size": "4K"})
    config = fake_google_images.requests[1]["body"]["generationConfig"]
    assert config["imageConfig"] == {"aspectRatio": "1:1", "imageSize": "4K"}
    record = record_of(raw)
    assert record.media_detail == "1024x1024/4K"
    # Reserved for 2000 output tokens (a 4K image), settled at what Gemini reported.
    assert record.reserved == (len(b"a map") * Decimal("2.00") + 2000 * Decimal("120.00")) / 1_000_000
    assert record.cost == (record.input_tokens * Decimal("2.00") + record.output_tokens * Decimal("120.00")) / 1_000_000
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="gemini/gemini-2.5-flash-image", prompt="two", n=2)
    assert "n must be 1" in refused.value.message
