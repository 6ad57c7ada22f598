"""manage.py run_worker: jobs survive a worker killed half-way, are never submitted or billed
twice when workers compete, time out cleanly with a refund, and are handed back on a clean stop."""

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from media.models import MediaFile, VideoJob
from tests.conftest import wait_for
from tests.fakes.video_jobs import VideoScript
from usage.models import MonthlySpend, UsageRecord

BASE_DIR = Path(__file__).resolve().parent.parent
VEO_FAST = "gemini/veo-3.1-fast-generate-preview"
LEASE_SECONDS = 1.5


def database_url() -> str:
    """The test database, for a worker process of its own."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def start_worker(tmp_path, media_storage):
    """start_worker(): `manage.py run_worker` as a process of its own on the test database; every
    one still running is stopped after the test."""
    started: list[subprocess.Popen] = []
    env = {**os.environ, "DATABASE_URL": database_url(), "VIDEO_WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
           "VIDEO_POLL_SECONDS": "0.1", "VIDEO_POLL_MAX_SECONDS": "0.3", "VIDEO_WORKER_IDLE_SECONDS": "0.1",
           "MEDIA_STORAGE": "local", "MEDIA_ROOT": str(media_storage), "PYTHONWARNINGS": "ignore"}

    def start() -> subprocess.Popen:
        log = (tmp_path / f"worker-{len(started)}.log").open("wb")
        process = subprocess.Popen([sys.executable, "manage.py", "run_worker"], cwd=BASE_DIR, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def finished(http, video_id: str, timeout: float = 30) -> dict:
    def done():
        body = http.get(f"/videos/{video_id}").json()
        return body if body["status"] not in ("queued", "in_progress") else None
    return wait_for(done, timeout=timeout, what=f"video {video_id} to finish")


def test_a_worker_killed_mid_job_leaves_it_to_the_next(http, other_http, fake_veo, start_worker):
    fake_veo.videos.enqueue(VideoScript(polls=2, hold_polls=True))
    first = start_worker()
    video = http.post("/video/generation", json={"model": VEO_FAST, "prompt": "a kite", "duration_seconds": 4}).json()
    wait_for(lambda: fake_veo.videos.polls_started >= 1, timeout=30, what="the first worker to poll")
    first.kill()  # in the middle of a poll, holding the job's lease
    first.wait(10)
    job = VideoJob.objects.get(pk=video["id"])
    assert job.handle and job.claimed_by and job.is_active  # submitted, and still leased to the dead worker

    fake_veo.release()
    start_worker()
    done = finished(http, video["id"])
    assert done["status"] == "completed"
    assert len(fake_veo.videos.submissions) == 1  # the second worker followed the same provider job
    records = UsageRecord.objects.filter(request_id=video["request_id"])
    assert [(r.video_seconds, r.cost) for r in records] == [(Decimal(4), Decimal("0.60"))]  # 4 s x $0.15
    assert MediaFile.objects.filter(request_id=video["request_id"], kind="video").count() == 1
    assert http.get(f"/videos/{video['id']}/content").status_code == 200
    assert other_http.get(f"/videos/{video['id']}").status_code == 404


def test_competing_workers_submit_and_bill_each_job_once(http, fake_veo, video_worker, start_worker, tenant):
    start_worker()
    fake_veo.videos.enqueue(*[VideoScript(polls=2) for _ in range(6)])
    ids = [http.post("/video/generation", json={"model": VEO_FAST, "prompt": f"scene {n}", "duration_seconds": 4})
           .json()["id"] for n in range(6)]
    for video_id in ids:
        assert finished(http, video_id)["status"] == "completed"
    assert len(fake_veo.videos.submissions) == 6
    assert UsageRecord.objects.count() == 6
    assert sum(r.cost for r in UsageRecord.objects.all()) == Decimal("3.60")
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.settled, ledger.video_seconds) == (Decimal(0), Decimal("3.60"), Decimal(24))


def test_a_clean_stop_hands_the_jobs_back(http, fake_veo, start_worker):
    fake_veo.videos.enqueue(VideoScript(polls=10_000))
    worker = start_worker()
    video = http.post("/video/generation", json={"model": VEO_FAST, "prompt": "tides"}).json()
    wait_for(lambda: http.get(f"/videos/{video['id']}").json()["status"] == "in_progress", timeout=30,
             what="the job to run")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    job = VideoJob.objects.get(pk=video["id"])
    assert job.status == "in_progress" and job.claimed_by == "" and job.claimed_until is None
    assert not UsageRecord.objects.exists()  # still running: nothing settled yet


def test_a_job_past_its_deadline_fails_refunded_and_is_stopped_upstream(http, fake_runway, video_worker, settings,
                                                                        tenant):
    settings.VIDEO_JOB_TIMEOUT_SECONDS = 1
    fake_runway.videos.enqueue(VideoScript(polls=10**6))
    video = http.post("/videos", json={"model": "runway/gen4_turbo", "prompt": "a slow pan", "seconds": 10,
                                       "image_url": "https://example.com/first.png"}).json()
    done = finished(http, video["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "timeout"
    assert "not ready within 1s" in done["error"]["message"]
    assert next(iter(fake_runway.videos.jobs.values())).cancelled  # Runway told to stop (DELETE /v1/tasks/{id})
    record = UsageRecord.objects.get(request_id=video["request_id"])
    assert (record.ending, record.cost, record.video_seconds, record.http_status) == (
        "timeout", Decimal(0), Decimal(0), 504)
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.reserved, ledger.video_seconds) == (Decimal(0), Decimal(0))
