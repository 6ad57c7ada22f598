"""Doubao on Volcengine Ark: the adapter against a fake Ark API over real HTTP (Seedream images,
Seedance tasks, errors), then through the gateway: images and edits with the official openai SDK,
video jobs over plain HTTP driven by the worker, each billed exactly and kept from other_tenant."""

import base64
from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import Plan
from gateway import api_keys
from providers import errors
from providers.adapters.volcengine import VolcengineAdapter
from providers.media_types import ImageRequest, MediaInput, VideoRequest
from providers.registry import get_adapter
from providers.types import Target
from tests.conftest import adapter_target, serve_provider_from, wait_for
from tests.conftest import run_adapter_call as run
from tests.fakes import media_samples
from tests.fakes.volcengine_api import API_KEY, FakeArk, Reply
from usage.models import MonthlySpend, UsageRecord

SEEDREAM = "doubao-seedream-4-0-250828"
SEEDANCE_PRO = "doubao-seedance-1-0-pro-250528"
ADAPTER = VolcengineAdapter()


@pytest.fixture(scope="session")
def ark_server():
    fake = FakeArk().start()
    yield fake
    fake.stop()


@pytest.fixture
def ark(ark_server):
    ark_server.reset()
    return ark_server


@pytest.fixture
def fake_doubao(catalog, ark):
    serve_provider_from("doubao", ark.base_url, ark.api_key)
    return ark


def target_for(fake: FakeArk, model: str = SEEDREAM, *, key: str = API_KEY) -> Target:
    return adapter_target("doubao", fake, model, key=key)


def posted(fake: FakeArk, suffix: str) -> list[dict]:
    return [r["body"] for r in fake.requests if r["method"] == "POST" and r["path"].endswith(suffix)]


# --- the adapter ----------------------------------------------------------------------------------

def test_registry_serves_ark_chat_images_and_video():
    adapter = get_adapter("volcengine")
    assert isinstance(adapter, VolcengineAdapter)
    assert all(adapter.supports(op) for op in ("complete", "stream", "generate_images", "edit_images",
                                               "submit_video", "poll_video", "cancel_video"))
    assert not adapter.supports("speech")


def test_seedream_images_come_back_inline_without_watermark(ark):
    result = run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a koi pond", size="1024x1024", seed=5),
                                         target_for(ark)))
    assert posted(ark, "/images/generations") == [{"model": SEEDREAM, "prompt": "a koi pond",
                                                   "response_format": "b64_json", "watermark": False,
                                                   "size": "1024x1024", "seed": 5}]
    [image] = result.images
    assert media_samples.png_size(image.content) == (1024, 1024)
    assert (result.usage.images, result.usage.media_detail) == (1, "1024x1024")


def test_a_group_is_billed_by_the_images_ark_made(ark):
    ark.enqueue(Reply(made=2))
    result = run(ADAPTER.generate_images(ImageRequest(model="m", prompt="four seasons", n=4, size="2048x2048"),
                                         target_for(ark)))
    [body] = posted(ark, "/images/generations")
    assert body["sequential_image_generation"] == "auto"
    assert body["sequential_image_generation_options"] == {"max_images": 4}
    assert result.usage.images == 2 and len(result.images) == 2


def test_image_to_image_sends_the_images_as_urls(ark):
    photo = media_samples.png(40, 40)
    run(ADAPTER.edit_images(ImageRequest(model="m", prompt="make it glass", images=[
        MediaInput(content=photo, content_type="image/png")]), target_for(ark)))
    run(ADAPTER.edit_images(ImageRequest(model="m", prompt="combine", images=[
        MediaInput(url="https://example.com/a.png"), MediaInput(url="https://example.com/b.png")]), target_for(ark)))
    first, second = posted(ark, "/images/generations")
    assert first["image"] == f"data:image/png;base64,{base64.b64encode(photo).decode()}"
    assert second["image"] == ["https://example.com/a.png", "https://example.com/b.png"]


@pytest.mark.parametrize(("status", "code", "error"), [
    (401, "AuthenticationError", errors.ProviderAuthFailed), (429, "RateLimitExceeded", errors.ProviderRateLimited),
    (400, "InputTextSensitiveContentDetected", errors.ContentFiltered),
    (400, "InvalidParameter", errors.ProviderBadRequest), (500, "InternalServiceError", errors.ProviderUnavailable)])
def test_ark_errors_are_mapped(ark, status, code, error):
    ark.enqueue(Reply(status=status, code=code, message="scripted"))
    with pytest.raises(error):
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="x"), target_for(ark)))


def test_seedance_settings_are_text_commands_and_the_task_is_polled(ark):
    target = target_for(ark, SEEDANCE_PRO)
    request = VideoRequest(model="m", prompt="a detective enters a dim room", duration_seconds=5,
                           aspect_ratio="16:9", resolution="720p", seed=7,
                           image=MediaInput(url="https://example.com/first.png"))
    state = run(ADAPTER.submit_video(request, target))
    [body] = posted(ark, "/contents/generations/tasks")
    assert body == {"model": SEEDANCE_PRO, "content": [
        {"type": "text", "text": "a detective enters a dim room --resolution 720p --ratio 16:9 --duration 5 --seed 7 "
                                 "--watermark false"},
        {"type": "image_url", "image_url": {"url": "https://example.com/first.png"}, "role": "first_frame"}]}
    assert state.status == "queued"
    states = [run(ADAPTER.poll_video(state, target)) for _ in range(3)]
    assert [s.status for s in states] == ["queued", "in_progress", "completed"]
    done = states[-1]
    assert (done.usage.video_seconds, done.usage.media_detail) == (5, "720p")
    assert run(ADAPTER.fetch_media(done.video, target)) == media_samples.mp4(5)


def test_a_failed_task_says_why(ark):
    ark.enqueue(Reply(states=("failed",), task_error={"code": "OutputVideoSensitiveContentDetected",
                                                      "message": "The output video may contain sensitive content."}))
    target = target_for(ark, SEEDANCE_PRO)
    state = run(ADAPTER.submit_video(VideoRequest(model="m", prompt="x", duration_seconds=5), target))
    state = run(ADAPTER.poll_video(state, target))
    assert state.status == "failed" and "sensitive content" in state.error


def test_a_queued_task_is_cancelled_and_a_running_one_left_alone(ark):
    target = target_for(ark, SEEDANCE_PRO)
    state = run(ADAPTER.submit_video(VideoRequest(model="m", prompt="x", duration_seconds=5), target))
    run(ADAPTER.cancel_video(state, target))
    [task] = ark.tasks.values()
    assert task.cancelled
    ark.reset()
    state = run(ADAPTER.submit_video(VideoRequest(model="m", prompt="y", duration_seconds=5), target))
    run(ADAPTER.poll_video(state, target))
    run(ADAPTER.poll_video(state, target))  # running now
    run(ADAPTER.cancel_video(state, target))  # Ark refuses (409): nothing to stop, no error
    assert not next(iter(ark.tasks.values())).cancelled


# --- through the gateway ----------------------------------------------------------------------------

def media_id_of(url: str) -> str:
    return url.split("/media/")[1].split("/")[0]


def test_seedream_through_the_sdk_is_billed_per_image(client, other_client, fake_doubao, tenant, other_tenant):
    answer = client.images.generate(model="doubao/doubao-seedream-4-0", prompt="a red lantern", size="2048x2048",
                                    response_format="b64_json")
    content = base64.b64decode(answer.data[0].b64_json)
    assert media_samples.png_size(content) == (2048, 2048)
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.model, record.provider, record.images, record.cost) == ("doubao/doubao-seedream-4-0", "doubao",
                                                                           1, Decimal("0.03"))
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_seededit_edits_the_uploaded_image(client, other_client, fake_doubao, tenant):
    photo = media_samples.png(30, 30)
    answer = client.images.edit(model="doubao/doubao-seededit-3-0-i2i", image=("in.png", photo, "image/png"),
                                prompt="turn it blue", extra_body={"seed": 9})
    [body] = posted(fake_doubao, "/images/generations")
    assert body["model"] == "doubao-seededit-3-0-i2i-250628" and body["seed"] == 9
    assert body["image"] == f"data:image/png;base64,{base64.b64encode(photo).decode()}"
    assert httpx.get(answer.data[0].url).status_code == 200
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{media_id_of(answer.data[0].url)}", cast_to=object)
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.cost == Decimal("0.03")


def test_a_refused_prompt_is_the_clients_400_and_costs_nothing(client, fake_doubao, tenant):
    fake_doubao.enqueue(Reply(status=400, code="InputTextSensitiveContentDetected",
                              message="The request failed because the input text may contain sensitive information."))
    with pytest.raises(openai.BadRequestError, match="sensitive"):
        client.images.generate(model="doubao/doubao-seedream-4-0", prompt="something refused", size="1024x1024")
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.images, record.cost) == (0, 0)
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0


def finished(http, video_id: str) -> dict:
    def done():
        body = http.get(f"/videos/{video_id}").json()
        return body if body["status"] not in ("queued", "in_progress") else None
    return wait_for(done, what=f"video {video_id} to finish")


def test_seedance_pro_text_to_video_is_billed_by_the_seconds_made(http, other_http, video_worker, fake_doubao,
                                                                  tenant, other_tenant):
    created = http.post("/video/generation", json={"model": "doubao/doubao-seedance-1-0-pro",
                                                   "prompt": "a kite over the sea", "duration_seconds": 10,
                                                   "aspect_ratio": "9:16", "resolution": "720p"})
    assert created.status_code == 200, created.text
    video = created.json()
    done = finished(http, video["id"])
    assert done["status"] == "completed" and done["provider"] == "doubao"
    [body] = posted(fake_doubao, "/contents/generations/tasks")
    assert body["content"] == [{"type": "text", "text": "a kite over the sea --resolution 720p --ratio 9:16 "
                                                        "--duration 10 --watermark false"}]
    assert http.get(f"/videos/{video['id']}/content").content == media_samples.mp4(10)
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.media_detail, record.cost) == (Decimal(10), "720p", Decimal("0.515"))
    for path in (f"/videos/{video['id']}", f"/videos/{video['id']}/content"):
        assert other_http.get(path).status_code == 404
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_seedance_lite_image_to_video_sends_the_first_frame(http, video_worker, fake_doubao):
    video = http.post("/videos", json={"model": "doubao/doubao-seedance-1-0-lite-i2v", "prompt": "the cat blinks",
                                       "seconds": "5", "resolution": "480p", "aspect_ratio": "16:9",
                                       "image_url": "https://example.com/cat.png", "seed": 4}).json()
    done = finished(http, video["id"])
    assert done["status"] == "completed"
    [body] = posted(fake_doubao, "/contents/generations/tasks")
    assert body["content"][1] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"},
                                  "role": "first_frame"}
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.media_detail, record.cost) == (Decimal(5), "480p", Decimal("0.0875"))


def test_a_failed_seedance_task_costs_nothing(http, video_worker, fake_doubao, tenant):
    fake_doubao.enqueue(Reply(states=("running", "failed")))
    video = http.post("/videos", json={"model": "doubao/doubao-seedance-1-0-lite-t2v", "prompt": "x",
                                       "seconds": "5"}).json()
    done = finished(http, video["id"])
    assert done["status"] == "failed" and "unexpected internal error" in done["error"]["message"]
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.cost) == (0, 0)
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0


def test_deleting_a_queued_seedance_video_cancels_the_task(http, other_http, fake_doubao, video_worker):
    fake_doubao.enqueue(Reply(states=("queued",)))
    video = http.post("/videos", json={"model": "doubao/doubao-seedance-1-0-pro", "prompt": "endless rain"}).json()
    wait_for(lambda: fake_doubao.tasks and next(iter(fake_doubao.tasks.values())).looks,
             what="the worker to have submitted and polled the task")
    assert other_http.delete(f"/videos/{video['id']}").status_code == 404
    assert http.delete(f"/videos/{video['id']}").status_code == 200
    wait_for(lambda: next(iter(fake_doubao.tasks.values())).cancelled, what="the Ark task to be cancelled")
    record = UsageRecord.objects.get(request_id=video["request_id"])
    assert (record.video_seconds, record.cost) == (0, 0)


def test_1080p_needs_a_plan_that_allows_it(http, fake_doubao):
    refused = http.post("/videos", json={"model": "doubao/doubao-seedance-1-0-pro", "prompt": "x",
                                         "resolution": "1080p"})
    assert refused.status_code == 403
    Plan.objects.filter(slug="pro").update(max_video_resolution=1080)
    api_keys.forget_keys()
    assert http.post("/videos", json={"model": "doubao/doubao-seedance-1-0-pro", "prompt": "x",
                                      "resolution": "1080p"}).status_code == 200
