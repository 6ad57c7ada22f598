"""Each video provider's wire format, through the gateway and through the adapter interface,
against fakes over real HTTP: Sora (multipart, its own content download), Veo
(predictLongRunning, operation polling, the keyed file link), Runway (image_to_video tasks)."""

import asyncio
import base64
import struct
import zlib
from decimal import Decimal

import pytest

from media.models import MediaFile
from providers import errors
from providers.adapters.gemini.adapter import GeminiAdapter
from providers.adapters.runway import RunwayAdapter
from providers.http import close_client
from providers.media_types import MediaInput, VideoRequest
from providers.types import Target
from tests.conftest import wait_for
from tests.fakes.video_jobs import FAKE_MP4, VideoScript
from usage.models import UsageRecord


def tiny_png() -> bytes:
    """A real 1x1 PNG, made here."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


PNG = tiny_png()
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def finished(http, video_id: str) -> dict:
    def done():
        body = http.get(f"/videos/{video_id}").json()
        return body if body["status"] not in ("queued", "in_progress") else None
    return wait_for(done, what=f"video {video_id} to finish")


def call(coroutine):
    """Run one adapter call on a loop of its own, closing that loop's upstream client after."""
    async def run():
        try:
            return await coroutine
        finally:
            await close_client()
    return asyncio.run(run())


def test_sora_gets_the_first_frame_as_a_multipart_file(http, other_http, video_worker, fake_openai):
    created = http.post("/videos", data={"model": "openai/sora-2-pro", "prompt": "the cat wakes up", "seconds": "8",
                                         "size": "1792x1024"},
                        files={"input_reference": ("cat.png", PNG, "image/png")})
    assert created.status_code == 403  # 1024 lines: more than Pro's 720p
    created = http.post("/videos", data={"model": "openai/sora-2-pro", "prompt": "the cat wakes up", "seconds": "8",
                                         "size": "1280x720"},
                        files={"input_reference": ("cat.png", PNG, "image/png")})
    assert created.status_code == 200, created.text
    done = finished(http, created.json()["id"])
    sent = fake_openai.videos.submissions[0]
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["content-type"].startswith("multipart/form-data")
    assert headers["authorization"] == "Bearer sk-fake-upstream"
    assert sent["body"] == {"model": "sora-2-pro", "prompt": "the cat wakes up", "seconds": "8", "size": "1280x720",
                            "input_reference": {"filename": "cat.png", "content_type": "image/png",
                                                "bytes": len(PNG)}}
    assert next(iter(fake_openai.videos.jobs.values())).downloads == 1  # fetched with our key, once
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.cost, record.media_detail) == (Decimal("2.40"), "1280x720/720p")  # 8 s x $0.30
    frame = MediaFile.objects.get(request_id=done["request_id"], kind="image")  # kept for the worker
    assert frame.size == len(PNG)
    assert other_http.get(f"/media/{frame.id}").status_code == 404


def test_veo_animates_an_image_and_downloads_with_the_key(http, video_worker, fake_veo):
    created = http.post("/video/generation", json={"model": "gemini/veo-3.1-generate-preview", "prompt": "it rolls",
                                                   "image_url": PNG_URL, "duration_seconds": 4})
    done = finished(http, created.json()["id"])
    assert done["status"] == "completed"
    instance = fake_veo.videos.submissions[0]["body"]["instances"][0]
    assert instance == {"prompt": "it rolls", "image": {"bytesBase64Encoded": base64.b64encode(PNG).decode(),
                                                        "mimeType": "image/png"}}
    assert {k.lower(): v for k, v in fake_veo.videos.submissions[0]["headers"].items()}["x-goog-api-key"] == \
        fake_veo.api_key
    assert [{k.lower(): v for k, v in r["headers"].items()}.get("x-goog-api-key") for r in fake_veo.file_requests] \
        == [fake_veo.api_key]
    assert http.get(f"/videos/{done['id']}/content").content == FAKE_MP4
    assert UsageRecord.objects.get(request_id=done["request_id"]).cost == Decimal("1.60")  # 4 s x $0.40


def test_veo_filtered_by_safety_is_a_refunded_failure(http, video_worker, fake_veo):
    fake_veo.videos.enqueue(VideoScript(outcome="filtered", failure="The prompt could not be submitted."))
    created = http.post("/video/generation", json={"model": "gemini/veo-3.1-fast-generate-preview", "prompt": "x"})
    done = finished(http, created.json()["id"])
    assert done["status"] == "failed" and "could not be submitted" in done["error"]["message"]
    assert UsageRecord.objects.get(request_id=done["request_id"]).cost == Decimal(0)


def test_veo_refuses_seed_before_any_call(http, fake_veo):
    answer = http.post("/video/generation", json={"model": "gemini/veo-2.0-generate-001", "prompt": "x", "seed": 3})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "seed"
    assert fake_veo.videos.submissions == []


def test_runway_turns_an_image_into_a_task_and_bills_its_seconds(http, other_http, video_worker, fake_runway):
    fake_runway.videos.enqueue(VideoScript(polls=3))
    created = http.post("/videos", json={"model": "runway/gen4_turbo", "prompt": "slow dolly in", "seconds": 10,
                                         "size": "720x1280", "seed": 123, "image_url": "https://example.com/a.jpg"})
    assert created.status_code == 200, created.text
    done = finished(http, created.json()["id"])
    assert done["status"] == "completed" and done["provider"] == "runway"
    sent = fake_runway.videos.submissions[0]
    assert {k.lower(): v for k, v in sent["headers"].items()}["x-runway-version"] == "2024-11-06"
    assert sent["body"] == {"model": "gen4_turbo", "promptImage": "https://example.com/a.jpg",
                            "promptText": "slow dolly in", "ratio": "720:1280", "duration": 10, "seed": 123}
    assert fake_runway.downloads == [next(iter(fake_runway.videos.jobs))]  # the output link, copied once
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.cost) == (Decimal(10), Decimal("0.50"))  # 10 s x $0.05
    assert other_http.get(f"/videos/{done['id']}/content").status_code == 404


def test_runway_failure_reason_reaches_the_client(http, video_worker, fake_runway):
    fake_runway.videos.enqueue(VideoScript(outcome="failed", failure="Input text did not pass moderation."))
    created = http.post("/videos", json={"model": "runway/gen4_turbo", "prompt": "x", "image_url": PNG_URL})
    done = finished(http, created.json()["id"])
    assert done["status"] == "failed"
    assert "did not pass moderation. (SAFETY.INPUT.TEXT)" in done["error"]["message"]


def runway_target(fake, key: str | None = None) -> Target:
    return Target(provider="runway", upstream_model="gen4_turbo", base_url=fake.base_url, api_key=key or fake.api_key)


def test_runway_adapter_states_and_errors(runway_server):
    runway_server.reset()
    adapter = RunwayAdapter()
    request = VideoRequest(model="runway/gen4_turbo", prompt="p", duration_seconds=5, size="1280x720",
                           image=MediaInput(content=PNG, content_type="image/png"))
    runway_server.videos.enqueue(VideoScript(polls=2))
    state = call(adapter.submit_video(request, runway_target(runway_server)))
    assert state.status == "queued" and state.handle["seconds"] == 5
    assert runway_server.videos.submissions[0]["body"]["promptImage"] == PNG_URL
    seen = [call(adapter.poll_video(state, runway_target(runway_server))) for _ in range(3)]
    assert [s.status for s in seen] == ["queued", "in_progress", "completed"]
    assert seen[1].progress == 67 and seen[2].usage.video_seconds == Decimal(5)
    with pytest.raises(errors.ProviderAuthFailed):
        call(adapter.submit_video(request, runway_target(runway_server, key="wrong")))
    runway_server.videos.enqueue(VideoScript(submit_status=429, submit_error="Too many tasks."))
    with pytest.raises(errors.ProviderRateLimited):
        call(adapter.submit_video(request, runway_target(runway_server)))
    with pytest.raises(errors.ProviderBadRequest):
        call(adapter.submit_video(VideoRequest(model="m", prompt="text only"), runway_target(runway_server)))


def test_veo_adapter_refuses_what_the_developer_api_does_not_take(veo_server):
    veo_server.reset()
    target = Target(provider="gemini", upstream_model="veo-2.0-generate-001", base_url=veo_server.base_url,
                    api_key=veo_server.api_key)
    with pytest.raises(errors.UnsupportedFeature):
        call(GeminiAdapter().submit_video(VideoRequest(model="m", prompt="p", fps=24), target))
    bad_key = Target(provider="gemini", upstream_model="veo-2.0-generate-001", base_url=veo_server.base_url,
                     api_key="AIza-wrong")
    with pytest.raises(errors.ProviderAuthFailed):
        call(GeminiAdapter().submit_video(VideoRequest(model="m", prompt="p"), bad_key))
    assert veo_server.videos.jobs == {}
