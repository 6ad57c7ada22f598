"""The video jobs API through the gateway: create, follow, download, list, cancel; plain HTTP."""

import json
from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import Plan
from gateway import api_keys
from gateway.api_keys import issue_api_key
from media.models import VideoJob
from tests.conftest import make_tenant, wait_for
from tests.fakes.video_jobs import FAKE_MP4, VideoScript
from usage.models import MonthlySpend, UsageRecord

SORA = "openai/sora-2"
VEO_FAST = "gemini/veo-3.1-fast-generate-preview"


def finished(http, video_id: str) -> dict:
    def done():
        body = http.get(f"/videos/{video_id}").json()
        return body if body["status"] not in ("queued", "in_progress") else None
    return wait_for(done, what=f"video {video_id} to finish")


def test_a_sora_job_completes_once_and_is_billed_per_second(http, other_http, video_worker, fake_openai):
    created = http.post("/videos", json={"model": SORA, "prompt": "a fox in the snow", "seconds": "8",
                                          "size": "1280x720"})
    assert created.status_code == 200, created.text
    video = created.json()
    assert video["object"] == "video" and video["id"].startswith("video_")
    assert video["status"] == "queued" and video["seconds"] == "8" and video["size"] == "1280x720"

    done = finished(http, video["id"])
    assert done["status"] == "completed" and done["progress"] == 100 and done["model"] == SORA
    content = http.get(f"/videos/{video['id']}/content")
    assert content.status_code == 200 and content.content == FAKE_MP4
    assert content.headers["content-type"] == "video/mp4"

    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert record.capability == "video" and record.model == SORA and record.provider == "openai"
    assert record.video_seconds == Decimal(8) and record.cost == Decimal("0.80")
    assert record.media_detail == "1280x720/720p"
    assert UsageRecord.objects.count() == 1
    assert Decimal(done["cost"]) == Decimal("0.80")

    for path in (f"/videos/{video['id']}", f"/videos/{video['id']}/content"):
        assert other_http.get(path).status_code == 404
    assert other_http.delete(f"/videos/{video['id']}").status_code == 404
    assert other_http.get("/videos").json()["data"] == []


# The SDK marks its videos methods deprecated (OpenAI scheduled the Sora API's shutdown); they still
# speak the shape /v1/videos serves for every provider.
@pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
def test_the_openai_sdk_creates_retrieves_and_downloads(client, other_client, video_worker, fake_openai):
    video = client.videos.create(model=SORA, prompt="waves at dusk", seconds="4", size="720x1280")
    assert video.status == "queued" and video.model == SORA
    wait_for(lambda: client.videos.retrieve(video.id).status == "completed", what="the video")
    assert client.videos.download_content(video.id).read() == FAKE_MP4
    assert [item.id for item in client.videos.list()] == [video.id]
    submitted = fake_openai.videos.submissions[0]["body"]
    assert submitted == {"model": "sora-2", "prompt": "waves at dusk", "seconds": "4", "size": "720x1280"}
    with pytest.raises(openai.NotFoundError):
        other_client.videos.retrieve(video.id)


def test_video_generation_takes_duration_ratio_and_resolution(http, other_http, video_worker, fake_veo):
    created = http.post("/video/generation", json={
        "model": VEO_FAST, "prompt": "a lighthouse in a storm", "duration_seconds": 6, "aspect_ratio": "9:16",
        "resolution": "720p", "negative_prompt": "blurry"})
    assert created.status_code == 200, created.text
    video = created.json()
    assert video["size"] == "720x1280" and video["seconds"] == "6" and video["aspect_ratio"] == "9:16"
    done = finished(http, video["id"])
    assert done["status"] == "completed" and done["provider"] == "gemini"
    sent = fake_veo.videos.submissions[0]
    assert sent["model"] == "veo-3.1-fast-generate-preview"
    assert sent["body"]["parameters"] == {"sampleCount": 1, "aspectRatio": "9:16", "durationSeconds": 6,
                                          "resolution": "720p", "negativePrompt": "blurry"}
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.cost) == (Decimal(6), Decimal("0.90"))  # 6 s x $0.15
    assert http.get(f"/videos/{video['id']}/content").content == FAKE_MP4
    assert other_http.get(f"/videos/{video['id']}/content").status_code == 404


def test_lists_the_tenants_jobs_in_pages(http, other_http):
    ids = [http.post("/videos", json={"model": SORA, "prompt": f"clip {n}"}).json()["id"] for n in range(3)]
    first = http.get("/videos", params={"limit": 2}).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert [item["id"] for item in first["data"]] == ids[::-1][:2]
    rest = http.get("/videos", params={"limit": 2, "after": first["last_id"]}).json()
    assert [item["id"] for item in rest["data"]] == ids[:1] and rest["has_more"] is False
    oldest_first = http.get("/videos", params={"order": "asc"}).json()
    assert [item["id"] for item in oldest_first["data"]] == ids
    assert other_http.get("/videos").json()["data"] == []
    assert other_http.get("/videos", params={"after": ids[0]}).status_code == 404


def test_cancelling_a_queued_job_refunds_it(http, other_http, tenant):
    video = http.post("/videos", json={"model": SORA, "prompt": "a slow sunrise", "seconds": "12"}).json()
    held = MonthlySpend.objects.get(tenant=tenant)
    assert held.reserved == Decimal("1.2") and held.video_seconds == Decimal(12)

    assert other_http.delete(f"/videos/{video['id']}").status_code == 404
    deleted = http.delete(f"/videos/{video['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": video["id"], "object": "video.deleted", "deleted": True, "status": "cancelled"}
    now = http.get(f"/videos/{video['id']}").json()
    assert now["status"] == "cancelled" and now["error"]["code"] == "cancelled" and now["cost"] == "0E-10"

    record = UsageRecord.objects.get(request_id=video["request_id"])
    assert (record.cost, record.video_seconds, record.ending) == (Decimal(0), Decimal(0), "client_gone")
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled, ledger.video_seconds) == (Decimal(0), Decimal(0), Decimal(0))
    assert http.get(f"/videos/{video['id']}/content").status_code == 409
    assert http.delete(f"/videos/{video['id']}").status_code == 200  # again: nothing more to do
    assert UsageRecord.objects.count() == 1


def test_cancelling_a_running_job_stops_it_at_the_provider(http, video_worker, fake_openai):
    fake_openai.videos.enqueue(VideoScript(polls=10_000))
    video = http.post("/videos", json={"model": SORA, "prompt": "endless rain"}).json()
    wait_for(lambda: http.get(f"/videos/{video['id']}").json()["status"] == "in_progress", what="the job to run")
    assert http.delete(f"/videos/{video['id']}").json()["status"] == "cancelled"
    job = next(iter(fake_openai.videos.jobs.values()))
    assert job.cancelled
    record = UsageRecord.objects.get(request_id=video["request_id"])
    assert record.cost == Decimal(0) and record.video_seconds == Decimal(0)


def test_a_failed_job_is_refunded_with_the_providers_reason(http, video_worker, fake_openai, tenant):
    fake_openai.videos.enqueue(VideoScript(outcome="failed", failure="The prompt was blocked by moderation."))
    video = http.post("/videos", json={"model": SORA, "prompt": "something forbidden"}).json()
    done = finished(http, video["id"])
    assert done["status"] == "failed" and "blocked by moderation" in done["error"]["message"]
    record = UsageRecord.objects.get(request_id=video["request_id"])
    assert (record.cost, record.video_seconds, record.outcome) == (Decimal(0), Decimal(0), "error")
    assert MonthlySpend.objects.get(tenant=tenant).reserved == Decimal(0)


def test_stream_true_sends_progress_until_done(http, video_worker, fake_openai):
    fake_openai.videos.enqueue(VideoScript(polls=3))
    events = []
    with http.stream("POST", "/videos", json={"model": SORA, "prompt": "a hummingbird", "stream": True}) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    kinds = [json.loads(event)["type"] for event in events[:-1]]
    assert kinds[0] == "video.queued" and kinds[-1] == "video.completed" and "video.in_progress" in kinds
    last = json.loads(events[-2])["video"]
    assert last["progress"] == 100 and last["url"].startswith("http")
    assert httpx.get(last["url"]).content == FAKE_MP4  # the signed URL works without a key


@pytest.mark.parametrize(("body", "param", "says"), [
    ({"model": SORA, "prompt": "x", "seconds": "5"}, "seconds", "4, 8, 12"),
    ({"model": SORA, "prompt": "x", "size": "1920x1080"}, "size", "720x1280, 1280x720"),
    ({"model": SORA, "prompt": "x", "seed": 7}, "seed", "does not take"),
    ({"model": SORA, "prompt": "x", "seconds": "4", "duration_seconds": 8}, "seconds", "disagree"),
    ({"model": SORA, "prompt": ""}, "prompt", "required"),
    ({"model": SORA, "prompt": "x", "image_url": "http://10.0.0.1/a.png"}, "image_url", "https://"),
    ({"model": SORA, "prompt": "x", "colour": "red"}, "colour", "Unknown parameter"),
    ({"model": "runway/gen4_turbo", "prompt": "x"}, "image_url", "from an image"),
    ({"model": "openai/gpt-4o-mini", "prompt": "x"}, "model", "/v1/chat/completions"),
    ({"prompt": "x"}, "model", "model is required"),
])
def test_refuses_what_the_model_does_not_take(http, fake_runway, body, param, says):
    answer = http.post("/videos", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and says in error["message"]
    assert not VideoJob.objects.exists() and not UsageRecord.objects.exists()


def test_plan_limits_video(http, tenant, other_http, other_tenant):
    Plan.objects.filter(slug="pro").update(max_video_resolution=720, video_seconds_per_month=10)
    api_keys.forget_keys()
    too_tall = http.post("/videos", json={"model": "openai/sora-2-pro", "prompt": "x", "size": "1792x1024"})
    assert too_tall.status_code == 403 and too_tall.json()["error"]["code"] == "video_resolution_not_on_plan"
    too_long = http.post("/videos", json={"model": SORA, "prompt": "x", "seconds": "12"})
    assert too_long.status_code == 429 and too_long.json()["error"]["code"] == "media_limit_exceeded"
    assert http.post("/videos", json={"model": SORA, "prompt": "x", "seconds": "8"}).status_code == 200
    assert http.post("/videos", json={"model": SORA, "prompt": "x", "seconds": "4"}).status_code == 429
    basic = make_tenant("bob-co", "bob@example.com", "basic")
    bob = issue_api_key(basic, name="bob").raw
    refused = httpx.post(f"{http.base_url}videos", json={"model": SORA, "prompt": "x"},
                         headers={"Authorization": f"Bearer {bob}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "capability_not_on_plan"


def test_falls_back_when_the_first_provider_will_not_take_the_job(http, video_worker, fake_openai, fake_veo,
                                                                 settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    fake_openai.videos.enqueue(VideoScript(submit_status=503, submit_error="Sora is overloaded."))
    created = http.post("/videos", json={"model": SORA, "prompt": "a paper boat", "seconds": "8",
                                         "size": "1280x720", "fallback_models": [VEO_FAST]})
    assert created.status_code == 200, created.text
    done = finished(http, created.json()["id"])
    assert done["status"] == "completed" and done["model"] == VEO_FAST and done["provider"] == "gemini"
    assert len(fake_openai.videos.submissions) == 1 and len(fake_veo.videos.submissions) == 1
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.model, record.cost) == (VEO_FAST, Decimal("1.20"))  # 8 s x $0.15, Veo's price


def test_a_job_failing_transiently_is_retried_a_counted_number_of_times_then_refunded(
        http, video_worker, fake_openai, settings, tenant):
    settings.UPSTREAM_MAX_RETRIES = 0
    settings.VIDEO_MAX_FAILURES = 3
    fake_openai.videos.enqueue(*[VideoScript(submit_status=503, submit_error="Sora is overloaded.")] * 5)
    video = http.post("/videos", json={"model": SORA, "prompt": "a storm"}).json()
    done = wait_for(lambda: (body := http.get(f"/videos/{video['id']}").json())["status"] == "failed" and body,
                    what="the job to give up")
    assert "overloaded" in done["error"]["message"]
    assert len(fake_openai.videos.submissions) == 3  # three tries, not one every few seconds until the deadline
    assert UsageRecord.objects.get(request_id=video["request_id"]).cost == Decimal(0)
    assert MonthlySpend.objects.get(tenant=tenant).reserved == Decimal(0)
