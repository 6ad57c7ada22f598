"""Hugging Face Inference Providers: the adapter against a fake Hub and router over real HTTP (the
provider mapping looked up, fal-ai's queue and WaveSpeed behind the router, errors), then through the
gateway: image edits with the official openai SDK and image-to-video as a job over plain HTTP,
billed exactly and kept from other_tenant."""

import base64
from decimal import Decimal

import httpx
import openai
import pytest

from providers import errors
from providers.adapters.huggingface import HuggingFaceAdapter, forget_mappings
from providers.media_types import ImageRequest, MediaInput, VideoRequest
from providers.registry import get_adapter
from providers.types import Target
from tests.conftest import adapter_target, serve_queue_provider, wait_for
from tests.conftest import run_adapter_call as run
from tests.fakes import media_samples
from tests.fakes.huggingface_api import API_KEY, FakeHuggingFace, Reply
from usage.models import MonthlySpend, UsageRecord

ADAPTER = HuggingFaceAdapter()
PHOTO = media_samples.png(48, 32)


@pytest.fixture(scope="session")
def hf_server():
    fake = FakeHuggingFace().start()
    yield fake
    fake.stop()


@pytest.fixture
def hf(hf_server):
    hf_server.reset()
    forget_mappings()
    yield hf_server
    forget_mappings()


@pytest.fixture
def fake_hf(catalog, hf):
    provider = serve_queue_provider("huggingface", hf)
    provider.quirks = {**provider.quirks, "hub_url": hf.address}
    provider.save(update_fields=["quirks"])
    from providers import router

    router.forget_catalog()
    return hf


def target_for(fake: FakeHuggingFace, model: str = "Qwen/Qwen-Image-Edit", *, key: str = API_KEY, total_timeout: float = 10.0) -> Target:
    return adapter_target("huggingface", fake, model, key=key, total_timeout=total_timeout, hub_url=fake.address)


def calls(fake: FakeHuggingFace, method: str, prefix: str) -> list[dict]:
    return [r for r in fake.requests if r["method"] == method and r["path"].startswith(prefix)]


def photo_request(**fields) -> ImageRequest:
    return ImageRequest(model="m", prompt="make the sky purple",
                        images=[MediaInput(content=PHOTO, content_type="image/png")], **fields)


# --- the adapter ----------------------------------------------------------------------------------

def test_registry_serves_router_chat_edits_and_video():
    adapter = get_adapter("huggingface")
    assert isinstance(adapter, HuggingFaceAdapter)
    assert all(adapter.supports(op) for op in ("complete", "stream", "edit_images", "submit_video", "poll_video",
                                               "cancel_video"))
    assert not adapter.supports("generate_images")


def test_an_edit_goes_to_the_mapped_fal_model_on_the_queue(hf):
    result = run(ADAPTER.edit_images(photo_request(seed=4, steps=20, size="96x64"), target_for(hf)))
    [lookup] = calls(hf, "GET", "/api/models/")
    assert lookup["path"] == "/api/models/Qwen/Qwen-Image-Edit"
    assert lookup["query"] == {"expand": "inferenceProviderMapping"}
    assert lookup["headers"]["Authorization"] == f"Bearer {API_KEY}"
    [submitted] = calls(hf, "POST", "/fal-ai/")
    assert submitted["path"] == "/fal-ai/fal-ai/qwen-image-edit" and submitted["query"] == {"_subdomain": "queue"}
    image = f"data:image/png;base64,{base64.b64encode(PHOTO).decode()}"
    assert submitted["body"] == {"image_url": image, "image_urls": [image], "prompt": "make the sky purple",
                                 "seed": 4, "num_inference_steps": 20, "image_size": {"width": 96, "height": 64}}
    [job] = hf.jobs.values()
    looks = [r["path"] for r in calls(hf, "GET", "/fal-ai/")]
    assert looks == [f"/fal-ai/fal-ai/qwen-image-edit/requests/{job.id}/status"] * 3 + \
        [f"/fal-ai/fal-ai/qwen-image-edit/requests/{job.id}"]
    assert all(r["query"] == {"_subdomain": "queue"} for r in calls(hf, "GET", "/fal-ai/"))
    assert result.usage.images == 1
    assert media_samples.png_size(run(ADAPTER.fetch_media(result.images[0], target_for(hf)))) == (96, 64)


def test_the_mapping_is_looked_up_once_per_while(hf):
    run(ADAPTER.edit_images(photo_request(), target_for(hf)))
    run(ADAPTER.edit_images(photo_request(), target_for(hf)))
    assert len(calls(hf, "GET", "/api/models/")) == 1


def test_a_pinned_provider_is_used_and_wavespeed_is_polled_behind_the_router(hf):
    result = run(ADAPTER.edit_images(photo_request(guidance_scale=2.5),
                                     target_for(hf, "Qwen/Qwen-Image-Edit:wavespeed")))
    [submitted] = calls(hf, "POST", "/wavespeed/")
    assert submitted["path"] == "/wavespeed/api/v3/wavespeed-ai/qwen-image/edit"
    assert submitted["body"] == {"image": f"data:image/png;base64,{base64.b64encode(PHOTO).decode()}",
                                 "prompt": "make the sky purple", "guidance_scale": 2.5}
    [job] = hf.jobs.values()
    assert {r["path"] for r in calls(hf, "GET", "/wavespeed/")} == {f"/wavespeed/api/v3/predictions/{job.id}/result"}
    assert result.usage.images == 1


def test_a_model_without_a_provider_spoken_here_says_what_the_hub_offers(hf):
    hf.mappings["black-forest-labs/FLUX.1-Kontext-dev"].pop("fal-ai")
    with pytest.raises(errors.ProviderNotFound, match=r"replicate \(image-to-image, live\)"):
        run(ADAPTER.edit_images(photo_request(), target_for(hf, "black-forest-labs/FLUX.1-Kontext-dev")))
    with pytest.raises(errors.ProviderNotFound, match="on wavespeed"):
        run(ADAPTER.edit_images(photo_request(), target_for(hf, "black-forest-labs/FLUX.1-Kontext-dev:wavespeed")))


@pytest.mark.parametrize(("status", "error"), [(402, errors.ProviderAuthFailed), (429, errors.ProviderRateLimited),
                                               (500, errors.ProviderUnavailable), (400, errors.ProviderBadRequest)])
def test_router_errors_are_mapped(hf, status, error):
    hf.enqueue(Reply(status=status, error="scripted refusal"))
    with pytest.raises(error):
        run(ADAPTER.edit_images(photo_request(), target_for(hf)))


def test_a_bad_token_is_the_operators_problem_and_never_quoted(hf):
    with pytest.raises(errors.ProviderAuthFailed) as raised:
        run(ADAPTER.edit_images(photo_request(), target_for(hf, key="hf_wrong")))
    assert "hf_wrong" not in raised.value.message and "HF_TOKEN" in raised.value.message


def test_image_to_video_on_fal_is_submitted_then_polled(hf):
    target = target_for(hf, "Wan-AI/Wan2.2-I2V-A14B")
    request = VideoRequest(model="m", prompt="the lighthouse beam sweeps", duration_seconds=5, resolution="480p",
                           seed=2, image=MediaInput(url="https://example.com/lighthouse.png"))
    state = run(ADAPTER.submit_video(request, target))
    [submitted] = calls(hf, "POST", "/fal-ai/")
    assert submitted["path"] == "/fal-ai/fal-ai/wan/v2.2-a14b/image-to-video"
    assert submitted["body"] == {"prompt": "the lighthouse beam sweeps", "seed": 2, "resolution": "480p",
                                 "image_url": "https://example.com/lighthouse.png"}
    states = [run(ADAPTER.poll_video(state, target)) for _ in range(3)]
    assert [s.status for s in states] == ["queued", "in_progress", "completed"]
    assert (states[-1].usage.video_seconds, states[-1].usage.media_detail) == (5, "480p")
    run(ADAPTER.cancel_video(states[-1], target))  # already finished: nothing to stop


def test_video_on_wavespeed_behind_the_router(hf):
    target = target_for(hf, "Wan-AI/Wan2.2-I2V-A14B:wavespeed")
    request = VideoRequest(model="m", prompt="waves", duration_seconds=5, resolution="720p",
                           image=MediaInput(url="https://example.com/sea.png"))
    state = run(ADAPTER.submit_video(request, target))
    assert calls(hf, "POST", "/wavespeed/")[0]["body"] == {"prompt": "waves", "resolution": "720p",
                                                           "image": "https://example.com/sea.png", "duration": 5}
    assert state.status == "queued" and state.upstream_model == "Wan-AI/Wan2.2-I2V-A14B:wavespeed"
    state = run(ADAPTER.poll_video(state, target))
    state = run(ADAPTER.poll_video(state, target))
    assert state.status == "completed" and state.usage.video_seconds == 5
    assert run(ADAPTER.fetch_media(state.video, target)) == media_samples.mp4(5)


# --- through the gateway ----------------------------------------------------------------------------

def test_qwen_image_edit_through_the_sdk_is_billed_per_image(client, other_client, fake_hf, tenant, other_tenant):
    answer = client.images.edit(model="huggingface/Qwen/Qwen-Image-Edit", image=("photo.png", PHOTO, "image/png"),
                                prompt="add a rainbow", extra_body={"seed": 8})
    [submitted] = calls(fake_hf, "POST", "/fal-ai/")
    assert submitted["body"]["prompt"] == "add a rainbow" and submitted["body"]["seed"] == 8
    assert httpx.get(answer.data[0].url).status_code == 200
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.model, record.provider, record.images, record.cost) == ("huggingface/Qwen/Qwen-Image-Edit",
                                                                           "huggingface", 1, Decimal("0.03"))
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{answer.data[0].url.split('/media/')[1].split('/')[0]}", cast_to=object)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_an_edit_only_model_refuses_text_to_image(client, fake_hf):
    with pytest.raises(openai.BadRequestError, match="does not generate images"):
        client.images.generate(model="huggingface/black-forest-labs/FLUX.1-Kontext-dev", prompt="a cat")
    assert not calls(fake_hf, "POST", "/")


def finished(http, video_id: str) -> dict:
    def done():
        body = http.get(f"/videos/{video_id}").json()
        return body if body["status"] not in ("queued", "in_progress") else None
    return wait_for(done, what=f"video {video_id} to finish")


def test_wan_image_to_video_is_a_job_billed_at_its_resolution(http, other_http, video_worker, fake_hf, tenant,
                                                              other_tenant):
    created = http.post("/videos", json={"model": "huggingface/Wan-AI/Wan2.2-I2V-A14B", "prompt": "leaves drift",
                                         "resolution": "480p", "image_url": "https://example.com/tree.png"})
    assert created.status_code == 200, created.text
    video = created.json()
    done = finished(http, video["id"])
    assert done["status"] == "completed" and done["provider"] == "huggingface"
    [submitted] = calls(fake_hf, "POST", "/fal-ai/")
    assert submitted["body"]["image_url"] == "https://example.com/tree.png"
    assert http.get(f"/videos/{video['id']}/content").content == media_samples.mp4(5)
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.media_detail, record.cost) == (Decimal(5), "480p", Decimal("0.20"))
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0
    for path in (f"/videos/{video['id']}", f"/videos/{video['id']}/content"):
        assert other_http.get(path).status_code == 404
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_a_failed_hf_video_costs_nothing(http, video_worker, fake_hf, tenant):
    fake_hf.enqueue(Reply(result_status=422))
    video = http.post("/videos", json={"model": "huggingface/Wan-AI/Wan2.2-I2V-A14B", "prompt": "x",
                                       "image_url": "https://example.com/tree.png"}).json()
    done = finished(http, video["id"])
    assert done["status"] == "failed" and "failed as scripted" in done["error"]["message"]
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.cost) == (0, 0)
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0
