"""fal.ai and Replicate image models through /v1/images with the official openai SDK: the gateway
waits on their queues, copies the images into its own storage, and bills each image at its list
price. The fakes speak fal's queue and Replicate's predictions API over real HTTP."""

import base64
from decimal import Decimal

import httpx
import openai
import pytest

from media.models import MediaFile
from providers import router
from providers.models import Model, Provider
from tests.fakes import media_samples
from tests.fakes.fal_queue import Reply as FalReply
from tests.fakes.replicate_api import Reply as ReplicateReply
from usage.models import MonthlySpend, UsageRecord

FLUX_DEV = "fal/fal-ai/flux/dev"
SCHNELL = "replicate/black-forest-labs/flux-schnell"


def record_of(raw) -> UsageRecord:
    return UsageRecord.objects.get(request_id=raw.headers["x-tollgate-request-id"])


def submitted(fake) -> list[dict]:
    return [r for r in fake.requests if r["method"] == "POST" and not r["path"].endswith("/cancel")]


def test_flux_on_fal_waits_on_the_queue_and_bills_each_image(client, other_client, fake_fal, tenant, other_tenant,
                                                             gateway_url):
    raw = client.images.with_raw_response.generate(model=FLUX_DEV, prompt="a red fox", n=2, size="1024x768",
                                                   extra_body={"seed": 7, "guidance_scale": 3.5, "steps": 20})
    answer = raw.parse()

    [sent] = submitted(fake_fal)
    assert sent["path"] == "/fal-ai/flux/dev" and sent["headers"]["Authorization"] == f"Key {fake_fal.api_key}"
    assert sent["body"] == {"prompt": "a red fox", "num_images": 2, "image_size": "landscape_4_3", "seed": 7,
                            "guidance_scale": 3.5, "num_inference_steps": 20}
    job = next(iter(fake_fal.jobs.values()))
    assert job.looks == 3  # IN_QUEUE, IN_PROGRESS, COMPLETED: one look each, no busy loop
    assert len(answer.data) == 2
    for image in answer.data:
        assert image.url.startswith(f"{gateway_url}/v1/media/") and "signature=" in image.url
        content = httpx.get(image.url)
        assert content.headers["content-type"] == "image/png"
        assert media_samples.png_size(content.content) == (1024, 768)

    record = record_of(raw)
    assert (record.tenant_id, record.model, record.provider, record.capability) == (tenant.pk, FLUX_DEV, "fal", "image")
    assert (record.images, record.media_detail, record.cost) == (2, "1024x768", Decimal("0.05"))
    assert Decimal(raw.headers["x-tollgate-cost"]) == Decimal("0.05")
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled, ledger.images) == (0, Decimal("0.05"), 2)

    stored = MediaFile.objects.filter(tenant=tenant)
    assert stored.count() == 2
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{stored[0].id}", cast_to=object)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_a_prompt_fals_checker_refuses_is_the_clients_400_and_costs_nothing(client, fake_fal, tenant):
    fake_fal.enqueue(FalReply(result_status=422, error_type="content_policy_violation", detail=[
        {"loc": ["body", "prompt"], "msg": "Flagged by the content checker.", "type": "content_policy_violation"}]))
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model=FLUX_DEV, prompt="something flagged")
    assert refused.value.code == "content_filter"
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.images, record.cost, record.http_status) == (0, 0, 400)
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0
    assert not MediaFile.objects.filter(tenant=tenant).exists()


def test_a_queue_slower_than_the_providers_timeout_is_a_504_and_cancelled_at_fal(client, fake_fal, tenant):
    Provider.objects.filter(slug="fal").update(total_timeout=1.0)
    router.forget_catalog()
    fake_fal.enqueue(FalReply(states=("IN_QUEUE",)))
    with pytest.raises(openai.InternalServerError) as failed:
        client.images.generate(model=FLUX_DEV, prompt="a very slow fox")
    assert failed.value.status_code == 504
    [job] = fake_fal.jobs.values()
    assert job.cancelled and len(submitted(fake_fal)) == 1
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.images, record.cost, record.http_status) == (0, 0, 504)


def test_fal_edits_take_the_uploaded_image_as_a_data_url(client, fake_fal, tenant):
    picture = media_samples.png(8, 8)
    raw = client.images.with_raw_response.edit(model="fal/fal-ai/flux-pro/kontext", prompt="add a hat",
                                               image=("cat.png", picture, "image/png"))
    raw.parse()
    [sent] = submitted(fake_fal)
    assert sent["path"] == "/fal-ai/flux-pro/kontext"
    assert sent["body"]["image_url"] == "data:image/png;base64," + base64.b64encode(picture).decode()
    record = record_of(raw)
    assert (record.images, record.cost) == (1, Decimal("0.04"))


def test_any_fal_model_the_operator_adds_is_served_without_code(client, fake_fal, tenant):
    # What an operator does in the admin: a new row, the fal model id as its upstream name.
    Model.objects.create(public_id="fal/fal-ai/recraft-v3", provider=Provider.objects.get(slug="fal"),
                         upstream_name="fal-ai/recraft-v3", capability="image", group="small",
                         price_per_image=Decimal("0.04"),
                         media_options={"sizes": ["1024x1024"], "max_n": 1,
                                        "styles": ["realistic_image", "vector_illustration"]})
    router.forget_catalog()
    raw = client.images.with_raw_response.generate(model="fal/fal-ai/recraft-v3", prompt="a logo",
                                                   response_format="b64_json", style="vector_illustration")
    answer = raw.parse()
    [sent] = submitted(fake_fal)
    assert sent["path"] == "/fal-ai/recraft-v3"
    assert sent["body"] == {"prompt": "a logo", "num_images": 1, "image_size": "square_hd",
                            "style": "vector_illustration"}
    assert media_samples.png_size(base64.b64decode(answer.data[0].b64_json)) == (1024, 1024)
    assert record_of(raw).cost == Decimal("0.04")


def test_flux_on_replicate_is_sized_by_ratio_and_answered_within_the_wait(client, other_client, fake_replicate,
                                                                         tenant):
    raw = client.images.with_raw_response.generate(model=SCHNELL, prompt="three moons", n=3, size="1344x768",
                                                   response_format="b64_json", extra_body={"seed": 3})
    answer = raw.parse()

    [sent] = fake_replicate.requests[:1]
    assert sent["path"] == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert sent["headers"]["Prefer"].startswith("wait=")
    # flux takes a ratio, never width and height (the catalog's model_inputs leave them out).
    assert sent["body"] == {"input": {"prompt": "three moons", "num_outputs": 3, "aspect_ratio": "16:9", "seed": 3}}
    assert [r["method"] for r in fake_replicate.requests] == ["POST"]  # done within the wait: no polling
    assert len(answer.data) == 3
    assert all(media_samples.png_size(base64.b64decode(image.b64_json)) == (1024, 1024) for image in answer.data)

    record = record_of(raw)
    assert (record.provider, record.images, record.media_detail) == ("replicate", 3, "1344x768")
    assert record.cost == Decimal("0.009")
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{MediaFile.objects.filter(tenant=tenant).first().id}", cast_to=object)


def test_a_replicate_prediction_that_fails_costs_nothing(client, fake_replicate, tenant):
    fake_replicate.enqueue(*[ReplicateReply(error="CUDA error: out of memory")] * 3)
    with pytest.raises(openai.APIStatusError) as failed:
        client.images.generate(model=SCHNELL, prompt="a storm")
    assert failed.value.status_code == 502
    assert "replicate's prediction failed: CUDA error: out of memory" in failed.value.message
    assert len(fake_replicate.predictions) == 3  # the router tried again, within its retries
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.images, record.cost) == (0, 0)
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0
