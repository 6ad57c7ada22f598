"""A client's cancel never makes a job free that the provider still bills: where the provider
cannot stop a running job (Veo; Ark once started; WaveSpeed), DELETE is refused with 409 and
the job finishes and is billed as usual."""

from decimal import Decimal

from tests.conftest import wait_for
from tests.fakes.video_jobs import VideoScript
from tests.test_video_providers import finished
from usage.models import UsageRecord

VEO = "gemini/veo-3.1-fast-generate-preview"


def test_a_running_veo_job_cannot_be_cancelled_and_is_billed_when_done(http, other_http, video_worker, fake_veo):
    fake_veo.videos.enqueue(VideoScript(polls=10_000))
    video = http.post("/videos", json={"model": VEO, "prompt": "waves", "seconds": 4}).json()
    wait_for(lambda: http.get(f"/videos/{video['id']}").json()["status"] == "in_progress", what="the job to run")

    assert other_http.delete(f"/videos/{video['id']}").status_code == 404
    refused = http.delete(f"/videos/{video['id']}")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "cancel_not_possible" and "billed" in error["message"]
    assert http.get(f"/videos/{video['id']}").json()["status"] == "in_progress"
    assert not UsageRecord.objects.exists()

    next(iter(fake_veo.videos.jobs.values())).script.polls = 0  # the provider finishes it
    done = finished(http, video["id"])
    assert done["status"] == "completed"
    record = UsageRecord.objects.get(request_id=video["request_id"])
    assert record.cost > Decimal(0) and record.video_seconds == Decimal(4)


def test_a_queued_job_not_yet_at_the_provider_is_still_cancelled_free(http, fake_veo):
    video = http.post("/videos", json={"model": VEO, "prompt": "waves", "seconds": 4}).json()
    deleted = http.delete(f"/videos/{video['id']}")  # no worker: it never reached Veo
    assert deleted.status_code == 200 and deleted.json()["status"] == "cancelled"
    assert UsageRecord.objects.get(request_id=video["request_id"]).cost == Decimal(0)
