"""fal.ai and Replicate video models through the video jobs API, over plain HTTP: the worker
submits to the queue, polls it to the end, stores the video and bills its seconds at the model's
list price; failures and cancellations cost nothing."""

from decimal import Decimal

import pytest

from billing.models import Plan
from gateway import api_keys
from tests.conftest import wait_for
from tests.fakes import media_samples
from tests.fakes.fal_queue import Reply as FalReply
from tests.fakes.replicate_api import Reply as ReplicateReply
from usage.models import MonthlySpend, UsageRecord


@pytest.fixture
def full_hd(tenant):
    """The tenant's plan (Pro) raised to 1080p video, as an operator would in the admin."""
    Plan.objects.filter(slug="pro").update(max_video_resolution=1080)
    api_keys.forget_keys()


def finished(http, video_id: str) -> dict:
    def done():
        body = http.get(f"/videos/{video_id}").json()
        return body if body["status"] not in ("queued", "in_progress") else None
    return wait_for(done, what=f"video {video_id} to finish")


def create(http, path: str = "/videos", **fields) -> dict:
    created = http.post(path, json=fields)
    assert created.status_code == 200, created.text
    return created.json()


def test_veo3_on_fal_is_queued_polled_stored_and_billed_per_second(http, other_http, video_worker, fake_fal,
                                                                   tenant, other_tenant):
    fake_fal.enqueue(FalReply(kind="video", states=("IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "COMPLETED")))
    video = create(http, model="fal/fal-ai/veo3", prompt="waves at dusk", seconds="8", size="1280x720")
    assert video["status"] == "queued" and video["seconds"] == "8"

    done = finished(http, video["id"])
    assert done["status"] == "completed" and done["provider"] == "fal" and done["progress"] == 100
    [job] = fake_fal.jobs.values()
    assert job.model == "fal-ai/veo3"
    # The catalog declares Veo's "8s" form; everything else is fal's common input names.
    assert job.input == {"prompt": "waves at dusk", "aspect_ratio": "16:9", "resolution": "720p", "duration": "8s"}
    assert job.looks == 4  # one look per queue state
    content = http.get(f"/videos/{video['id']}/content")
    assert content.status_code == 200 and content.content == media_samples.mp4(8)

    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.model, record.provider, record.capability) == ("fal/fal-ai/veo3", "fal", "video")
    assert (record.video_seconds, record.media_detail, record.cost) == (Decimal(8), "720p", Decimal("3.20"))
    assert Decimal(done["cost"]) == Decimal("3.20")
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled) == (0, Decimal("3.20"))

    for path in (f"/videos/{video['id']}", f"/videos/{video['id']}/content"):
        assert other_http.get(path).status_code == 404
    assert other_http.get("/videos").json()["data"] == []
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_ray_2_is_priced_by_the_resolution_asked_for(http, video_worker, fake_fal, full_hd):
    fake_fal.enqueue(FalReply(kind="video", states=("IN_PROGRESS", "COMPLETED")))
    video = create(http, "/video/generation", model="fal/fal-ai/luma-dream-machine/ray-2", prompt="a fox running",
                   duration_seconds=5, aspect_ratio="9:16", resolution="1080p")
    done = finished(http, video["id"])
    assert done["status"] == "completed"
    [job] = fake_fal.jobs.values()
    assert job.input == {"prompt": "a fox running", "aspect_ratio": "9:16", "resolution": "1080p", "duration": "5s"}
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.media_detail, record.cost) == (Decimal(5), "1080p", Decimal("2.00"))


def test_kling_image_to_video_on_fal_sends_the_first_frame(http, video_worker, fake_fal, full_hd):
    fake_fal.enqueue(FalReply(kind="video", states=("COMPLETED",)))
    video = create(http, model="fal/fal-ai/kling-video/v2.1/master/image-to-video", prompt="the cat yawns",
                   seconds="10", image_url="https://example.com/cat.png", negative_prompt="blur")
    done = finished(http, video["id"])
    [job] = fake_fal.jobs.values()
    assert job.input == {"prompt": "the cat yawns", "negative_prompt": "blur", "aspect_ratio": "16:9",
                         "duration": "10", "image_url": "https://example.com/cat.png"}  # no resolution: Kling takes none
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.cost) == (Decimal(10), Decimal("2.80"))


def test_a_video_fal_fails_costs_nothing(http, video_worker, fake_fal, tenant):
    fake_fal.enqueue(FalReply(kind="video", states=("IN_PROGRESS", "COMPLETED"), result_status=422,
                              detail=[{"loc": ["body", "prompt"], "msg": "Prompt is too long", "type": "value_error"}]))
    video = create(http, model="fal/fal-ai/veo3", prompt="waves")
    done = finished(http, video["id"])
    assert done["status"] == "failed" and "Prompt is too long" in done["error"]["message"]
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.cost) == (0, 0)
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0
    assert http.get(f"/videos/{video['id']}/content").status_code == 409


def test_deleting_a_queued_video_cancels_it_at_fal(http, other_http, video_worker, fake_fal):
    fake_fal.enqueue(FalReply(kind="video", states=("IN_QUEUE",)))
    video = create(http, model="fal/fal-ai/veo3", prompt="endless rain")
    wait_for(lambda: http.get(f"/videos/{video['id']}").json()["provider"] == "fal" and fake_fal.looked.is_set(),
             what="the worker to have submitted the job to fal")
    assert other_http.delete(f"/videos/{video['id']}").status_code == 404
    assert http.delete(f"/videos/{video['id']}").status_code == 200
    [job] = fake_fal.jobs.values()
    wait_for(lambda: job.cancelled, what="the fal request to be cancelled")
    record = UsageRecord.objects.get(request_id=video["request_id"])
    assert (record.video_seconds, record.cost) == (0, 0)


def test_kling_on_replicate_is_a_prediction_polled_to_the_end(http, other_http, video_worker, fake_replicate):
    fake_replicate.enqueue(ReplicateReply(kind="video", states=("starting", "processing", "succeeded")))
    video = create(http, model="replicate/kwaivgi/kling-v2.1", prompt="leaves fall", seconds="5",
                   image_url="https://example.com/tree.png")
    done = finished(http, video["id"])
    assert done["status"] == "completed" and done["provider"] == "replicate"
    [created] = [r for r in fake_replicate.requests if r["method"] == "POST"]
    assert created["path"] == "/v1/models/kwaivgi/kling-v2.1/predictions" and "Prefer" not in created["headers"]
    assert created["body"] == {"input": {"prompt": "leaves fall", "duration": 5,
                                         "start_image": "https://example.com/tree.png"}}
    assert http.get(f"/videos/{video['id']}/content").content == media_samples.mp4(5)
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.media_detail, record.cost) == (Decimal(5), "720p", Decimal("0.25"))
    assert other_http.get(f"/videos/{video['id']}/content").status_code == 404


def test_hailuo_on_replicate_at_1080p_bills_the_1080p_price(http, video_worker, fake_replicate, full_hd):
    fake_replicate.enqueue(ReplicateReply(kind="video", states=("processing", "succeeded")))
    video = create(http, "/video/generation", model="replicate/minimax/hailuo-02", prompt="a city at night",
                   duration_seconds=10, aspect_ratio="16:9", resolution="1080p")
    done = finished(http, video["id"])
    [created] = [r for r in fake_replicate.requests if r["method"] == "POST"]
    assert created["body"] == {"input": {"prompt": "a city at night", "resolution": "1080p", "duration": 10}}
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.media_detail, record.cost) == (Decimal(10), "1080p", Decimal("0.80"))
