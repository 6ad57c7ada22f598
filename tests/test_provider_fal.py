"""The fal.ai adapter through the adapter interface, against a fake fal queue over real HTTP:
what it submits, how it waits on the queue, what it hands back, and how fal's errors arrive."""

import asyncio
import base64
import itertools
import json
from decimal import Decimal

import pytest

from providers import errors
from providers.adapters.base import Adapter
from providers.adapters.fal.adapter import FalAdapter
from providers.adapters.queue import poll_delays
from providers.media_types import (
    ImageRequest,
    MediaInput,
    SpeechRequest,
    VideoJobState,
    VideoRequest,
)
from providers.registry import get_adapter
from providers.types import Target
from tests.conftest import adapter_target
from tests.conftest import run_adapter_call as run
from tests.fakes import media_samples
from tests.fakes.fal_queue import API_KEY, FakeFal, Reply

FLUX_DEV = "fal-ai/flux/dev"
VEO = "fal-ai/veo3"
ADAPTER = FalAdapter()


@pytest.fixture
def fal(fal_server):
    fal_server.reset()
    return fal_server


def target_for(fake: FakeFal, model: str = FLUX_DEV, *, key: str = API_KEY, **options) -> Target:
    return adapter_target("fal", fake, model, key=key, **options)


def test_registry_serves_fal_with_images_edits_video_and_speech():
    adapter = get_adapter("fal")
    assert isinstance(adapter, FalAdapter)
    assert all(adapter.supports(operation) for operation in
               ("generate_images", "edit_images", "submit_video", "poll_video", "speech"))
    assert not adapter.supports("transcribe")
    assert type(adapter).cancel_video is not Adapter.cancel_video


def test_images_wait_through_the_queue_and_come_back_as_real_files(fal):
    request = ImageRequest(model="fal/fal-ai/flux/dev", prompt="a red fox", n=2, size="1024x1024", seed=7,
                           guidance_scale=3.5, steps=28, negative_prompt="blurry", output_format="png")
    result = run(ADAPTER.generate_images(request, target_for(fal)))

    submitted = fal.calls("POST")
    assert [r["path"] for r in submitted] == ["/fal-ai/flux/dev"]
    assert submitted[0]["headers"]["Authorization"] == f"Key {API_KEY}"
    assert submitted[0]["body"] == {"prompt": "a red fox", "num_images": 2, "image_size": "square_hd", "seed": 7,
                                    "guidance_scale": 3.5, "num_inference_steps": 28, "negative_prompt": "blurry",
                                    "output_format": "png"}
    job = next(iter(fal.jobs.values()))
    # fal's quirk: the request's URLs carry only owner/app; one status check per queue state, with logs.
    checks = fal.calls("GET", "/status")
    assert [r["path"] for r in checks] == [f"/fal-ai/flux/requests/{job.request_id}/status"] * 3
    assert all(r["query"] == {"logs": "1"} for r in checks)
    assert [r["path"] for r in fal.calls("GET", job.request_id)] == [f"/fal-ai/flux/requests/{job.request_id}"]

    assert result.usage.images == 2 and result.usage.media_detail == "1024x1024"
    assert result.upstream_model == FLUX_DEV
    assert [image.content_type for image in result.images] == ["image/png", "image/png"]
    content = run(ADAPTER.fetch_media(result.images[0], target_for(fal)))
    assert media_samples.png_size(content) == (1024, 1024)


def test_a_size_that_is_no_preset_goes_as_width_and_height(fal):
    result = run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox", size="1280x720",
                                                      aspect_ratio="16:9"), target_for(fal)))
    body = fal.calls("POST")[0]["body"]
    assert body["image_size"] == {"width": 1280, "height": 720} and body["aspect_ratio"] == "16:9"
    assert body["num_images"] == 1
    assert result.usage.images == 1 and result.usage.media_detail == "1280x720"


def test_a_declared_style_goes_through_as_the_model_names_it(fal):
    run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a logo", style="vector_illustration"),
                                target_for(fal, "fal-ai/recraft-v3")))
    assert fal.calls("POST")[0]["body"] == {"prompt": "a logo", "num_images": 1, "style": "vector_illustration"}


def test_the_queue_is_polled_once_per_state_with_growing_waits(fal):
    fal.enqueue(Reply(states=("IN_QUEUE",) * 5 + ("IN_PROGRESS", "IN_PROGRESS", "COMPLETED")))
    run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(fal)))
    assert len(fal.calls("GET", "/status")) == 8  # never a second look at a state without a wait between
    delays = list(itertools.islice(poll_delays(target_for(fal, poll_interval=0.5, poll_interval_max=5)), 8))
    assert delays == [0.5, 0.75, 1.125, 1.6875, 2.53125, 3.796875, 5, 5]


def test_a_queue_that_never_finishes_times_out_and_the_request_is_cancelled(fal):
    fal.enqueue(Reply(states=("IN_QUEUE",)))
    with pytest.raises(errors.ProviderTimeout, match="did not finish within 0.3s"):
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(fal, total_timeout=0.3)))
    job = next(iter(fal.jobs.values()))
    assert job.cancelled
    assert [r["path"] for r in fal.calls("PUT")] == [f"/fal-ai/flux/requests/{job.request_id}/cancel"]


def test_a_status_endpoint_that_hangs_is_cut_at_the_deadline(fal):
    fal.enqueue(Reply(states=("IN_QUEUE",), status_delay=3))
    with pytest.raises(errors.ProviderTimeout):
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(fal, total_timeout=0.4)))
    assert next(iter(fal.jobs.values())).cancelled


def test_a_failed_status_check_is_a_missed_look_not_a_second_submission(fal):
    fal.enqueue(Reply(status_errors={0: 503, 1: 500}))
    result = run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(fal)))
    assert result.usage.images == 1
    assert len(fal.calls("POST")) == 1 and len(fal.calls("GET", "/status")) == 5


def test_a_caller_that_gives_up_cancels_the_queued_request(fal):
    fal.enqueue(Reply(states=("IN_QUEUE",)))

    async def give_up():
        task = asyncio.create_task(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(fal)))
        assert await asyncio.to_thread(fal.looked.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(give_up())
    assert next(iter(fal.jobs.values())).cancelled


def test_urls_on_another_host_are_rebuilt_on_ours_so_the_key_stays_home(fal):
    fal.enqueue(Reply(foreign_urls=True))
    result = run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(fal)))
    assert result.usage.images == 1
    job = next(iter(fal.jobs.values()))
    assert fal.calls("GET", "/status")[0]["path"] == f"/fal-ai/flux/requests/{job.request_id}/status"


def test_a_refused_key_is_the_operators_problem_and_never_repeated(fal):
    with pytest.raises(errors.ProviderAuthFailed) as caught:
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(fal, key="wrong-key")))
    assert caught.value.status == 502 and "wrong-key" not in caught.value.message
    assert fal.jobs == {}


@pytest.mark.parametrize(("reply", "error", "message"), [
    (Reply(submit_status=404, detail="Application 'nope' not found"), errors.ProviderNotFound, "no model 'fal-ai/flux/dev'"),
    (Reply(submit_status=429, detail="Too many requests", headers={"Retry-After": "7"}), errors.ProviderRateLimited,
     "Too many requests"),
    (Reply(submit_status=503, detail="Service unavailable"), errors.ProviderUnavailable, "503"),
    (Reply(submit_status=403, detail="User is locked. Reason: Exhausted balance."), errors.ProviderAuthFailed,
     "Exhausted balance"),
    (Reply(required=("prompt", "image_url")), errors.ProviderBadRequest, "image_url: Field required"),
])
def test_fal_errors_on_submit_map_to_the_gateways_own(fal, reply, error, message):
    fal.enqueue(reply)
    with pytest.raises(error, match=message) as caught:
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(fal)))
    assert type(caught.value) is error
    if isinstance(caught.value, errors.ProviderRateLimited):
        assert caught.value.retry_after == 7


def test_a_prompt_refused_by_the_models_safety_checker_is_content_filtered(fal):
    fal.enqueue(Reply(result_status=422, error_type="content_policy_violation", detail=[
        {"loc": ["body", "prompt"], "msg": "The content could not be processed: flagged by a content checker.",
         "type": "content_policy_violation"}]))
    with pytest.raises(errors.ContentFiltered, match="prompt: The content could not be processed"):
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="something"), target_for(fal)))
    assert len(fal.calls("POST")) == 1


def test_a_model_that_fails_ends_the_wait_at_once_for_the_router_to_decide(fal):
    fal.enqueue(Reply(result_status=500, detail="CUDA out of memory"))
    with pytest.raises(errors.ProviderUnavailable, match="CUDA out of memory") as caught:
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(fal)))
    assert caught.value.retryable
    job = next(iter(fal.jobs.values()))
    assert len(fal.calls("GET", job.request_id)) == 1  # the failed result is not fetched again and again
    assert fal.calls("PUT") == []


def test_edits_send_the_image_and_mask_as_data_urls(fal):
    picture = media_samples.png(64, 64)
    request = ImageRequest(model="m", prompt="make it blue", images=[MediaInput(content=picture, content_type="image/png")],
                           mask=MediaInput(url="https://example.com/mask.png"))
    result = run(ADAPTER.edit_images(request, target_for(fal, "fal-ai/flux/dev/image-to-image")))
    body = fal.calls("POST")[0]["body"]
    assert fal.calls("POST")[0]["path"] == "/fal-ai/flux/dev/image-to-image"
    assert body["image_url"] == "data:image/png;base64," + base64.b64encode(picture).decode()
    assert body["mask_url"] == "https://example.com/mask.png"
    assert result.usage.images == 1


def test_a_model_declaring_other_field_names_gets_them_without_code(fal):
    model_inputs = {"fal-ai/nano-banana/edit": {"fields": {"image_url": "image_urls"}, "inputs": {"sync_mode": False}},
                    "fal-ai/nano-banana": {"fields": {"prompt": "wrong"}}}
    request = ImageRequest(model="m", prompt="a hat on it", images=[MediaInput(url="https://example.com/a.png")],
                           extra={"enable_safety_checker": True})
    run(ADAPTER.edit_images(request, target_for(fal, "fal-ai/nano-banana/edit", model_inputs=model_inputs)))
    body = fal.calls("POST")[0]["body"]
    assert body == {"prompt": "a hat on it", "num_images": 1, "image_urls": ["https://example.com/a.png"],
                    "enable_safety_checker": True, "sync_mode": False}


def test_several_images_to_edit_go_as_a_list(fal):
    images = [MediaInput(url="https://example.com/a.png"), MediaInput(url="https://example.com/b.png")]
    run(ADAPTER.edit_images(ImageRequest(model="m", prompt="merge", images=images), target_for(fal)))
    assert fal.calls("POST")[0]["body"]["image_urls"] == ["https://example.com/a.png", "https://example.com/b.png"]


def test_video_is_a_job_submitted_then_polled_to_completion(fal):
    fal.enqueue(Reply(kind="video", states=("IN_QUEUE", "IN_PROGRESS", "COMPLETED")))
    target = target_for(fal, VEO, model_inputs={"fal-ai/veo3": {"duration": "{seconds}s"}})
    request = VideoRequest(model="fal/fal-ai/veo3", prompt="waves at dusk", duration_seconds=8, size="1280x720",
                           negative_prompt="people", seed=3)
    state = run(ADAPTER.submit_video(request, target))
    assert state.status == "queued" and state.progress == 0
    assert fal.calls("POST")[0]["body"] == {"prompt": "waves at dusk", "negative_prompt": "people", "seed": 3,
                                             "aspect_ratio": "16:9", "resolution": "720p", "duration": "8s"}
    assert fal.calls("GET") == []  # submission never waits for the video
    job = next(iter(fal.jobs.values()))
    assert state.handle["status_url"].endswith(f"/fal-ai/veo3/requests/{job.request_id}/status")

    # What survives a restart: the stored status and handle.
    state = VideoJobState(status=state.status, handle=json.loads(json.dumps(state.handle)))
    seen = [run(ADAPTER.poll_video(state, target))]
    seen.append(run(ADAPTER.poll_video(seen[-1], target)))
    seen.append(run(ADAPTER.poll_video(seen[-1], target)))
    assert [(s.status, s.progress) for s in seen] == [("queued", 0), ("in_progress", 50), ("completed", 100)]
    done = seen[-1]
    assert done.usage.video_seconds == Decimal(8) and done.usage.media_detail == "720p"
    assert done.video.content_type == "video/mp4"
    content = run(ADAPTER.fetch_media(done.video, target))
    assert media_samples.mp4(8) == content


def test_image_to_video_sends_the_first_frame(fal):
    fal.enqueue(Reply(kind="video"))
    request = VideoRequest(model="m", prompt="it moves", image=MediaInput(url="https://example.com/first.png"),
                           aspect_ratio="9:16", resolution="1080p", duration_seconds=5)
    run(ADAPTER.submit_video(request, target_for(fal, "fal-ai/kling-video/v2.1/master/image-to-video")))
    sent = fal.calls("POST")[0]
    assert sent["path"] == "/fal-ai/kling-video/v2.1/master/image-to-video"
    assert sent["body"] == {"prompt": "it moves", "aspect_ratio": "9:16", "resolution": "1080p", "duration": "5",
                            "image_url": "https://example.com/first.png"}


def test_a_video_of_unasked_length_is_billed_by_what_the_file_says(fal):
    fal.enqueue(Reply(kind="video", states=("COMPLETED",), video_seconds=6.5))
    target = target_for(fal, "fal-ai/minimax/video-01")
    state = run(ADAPTER.submit_video(VideoRequest(model="m", prompt="a cat"), target))
    done = run(ADAPTER.poll_video(state, target))
    assert done.status == "completed" and done.usage.video_seconds == Decimal("6.5")
    assert done.usage.media_detail == "" and done.video.content == media_samples.mp4(6.5)


def test_a_video_whose_length_fal_reports_is_billed_by_it(fal):
    fal.enqueue(Reply(kind="video", states=("COMPLETED",), video_metadata=True))
    target = target_for(fal, "fal-ai/hunyuan-video")
    state = run(ADAPTER.submit_video(VideoRequest(model="m", prompt="a cat", duration_seconds=4), target))
    done = run(ADAPTER.poll_video(state, target))
    assert done.usage.video_seconds == Decimal(4) and done.usage.media_detail == "720p"
    assert done.video.content is None  # known length: the gateway downloads it once, later


def test_a_failed_video_job_says_why(fal):
    fal.enqueue(Reply(kind="video", states=("IN_PROGRESS", "COMPLETED"), result_status=422,
                      detail=[{"loc": ["body", "prompt"], "msg": "Prompt is too long", "type": "value_error"}]))
    target = target_for(fal, VEO)
    state = run(ADAPTER.submit_video(VideoRequest(model="m", prompt="a cat"), target))
    state = run(ADAPTER.poll_video(state, target))
    assert state.status == "in_progress"
    state = run(ADAPTER.poll_video(state, target))
    assert state.status == "failed" and "prompt: Prompt is too long" in state.error
    assert state.usage.video_seconds == 0


def test_a_video_job_can_be_cancelled_and_then_reads_as_failed(fal):
    fal.enqueue(Reply(kind="video", states=("IN_QUEUE",)))
    target = target_for(fal, VEO)
    state = run(ADAPTER.submit_video(VideoRequest(model="m", prompt="a cat"), target))
    run(ADAPTER.cancel_video(state, target))
    assert next(iter(fal.jobs.values())).cancelled
    state = run(ADAPTER.poll_video(state, target))
    assert state.status == "failed" and "cancelled" in state.error
    run(ADAPTER.cancel_video(state, target))  # already over: nothing to stop, no error


def test_a_transient_status_failure_while_polling_a_video_is_raised_for_the_next_poll(fal):
    fal.enqueue(Reply(kind="video", status_errors={0: 502}))
    target = target_for(fal, VEO)
    state = run(ADAPTER.submit_video(VideoRequest(model="m", prompt="a cat"), target))
    with pytest.raises(errors.ProviderUnavailable) as caught:
        run(ADAPTER.poll_video(state, target))
    assert caught.value.retryable
    assert run(ADAPTER.poll_video(state, target)).status == "queued"  # the look that failed moved nothing on


def test_a_video_request_fal_forgot_is_failed(fal):
    target = target_for(fal, VEO)
    base = f"{fal.base_url}/fal-ai/veo3/requests/gone"
    state = VideoJobState(status="in_progress", handle={"request_id": "gone", "status_url": f"{base}/status",
                                                        "response_url": base, "cancel_url": f"{base}/cancel"})
    polled = run(ADAPTER.poll_video(state, target))
    assert polled.status == "failed" and "no longer knows" in polled.error


def test_speech_comes_back_as_audio_bytes_billed_by_characters(fal):
    fal.enqueue(Reply(kind="audio", required=("prompt",)))
    target = target_for(fal, "fal-ai/kokoro/american-english",
                        model_inputs={"fal-ai/kokoro": {"fields": {"text": "prompt"}}})
    result = run(ADAPTER.speech(SpeechRequest(model="m", input="Hello there.", voice="af_heart", speed=1.2), target))
    assert fal.calls("POST")[0]["body"] == {"prompt": "Hello there.", "voice": "af_heart", "speed": 1.2}
    assert result.audio == media_samples.wav(1.0) and result.content_type == "audio/wav"
    assert result.usage.characters == len("Hello there.")


def test_speech_instructions_are_refused_before_any_call(fal):
    with pytest.raises(errors.UnsupportedFeature, match="instructions"):
        run(ADAPTER.speech(SpeechRequest(model="m", input="hi", instructions="whisper"), target_for(fal)))
    assert fal.requests == []
