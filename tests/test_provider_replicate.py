"""The Replicate adapter through the adapter interface, against a fake Replicate API over real
HTTP: predictions created (waiting where it fits), polled, cancelled, and their errors mapped."""

import json
from decimal import Decimal

import pytest

from providers import errors
from providers.adapters.replicate import ReplicateAdapter
from providers.media_types import ImageRequest, MediaInput, VideoJobState, VideoRequest
from providers.registry import get_adapter
from providers.types import Target
from tests.conftest import adapter_target
from tests.conftest import run_adapter_call as run
from tests.fakes import media_samples
from tests.fakes.replicate_api import API_KEY, FakeReplicate, Reply

SCHNELL = "black-forest-labs/flux-schnell"
KLING = "kwaivgi/kling-v2.1"
ADAPTER = ReplicateAdapter()


@pytest.fixture
def replicate(replicate_server):
    replicate_server.reset()
    return replicate_server


def target_for(fake: FakeReplicate, model: str = SCHNELL, *, key: str = API_KEY, **options) -> Target:
    return adapter_target("replicate", fake, model, key=key, **options)


def test_registry_serves_replicate_with_images_edits_and_video():
    adapter = get_adapter("replicate")
    assert isinstance(adapter, ReplicateAdapter)
    assert all(adapter.supports(op) for op in ("generate_images", "edit_images", "submit_video", "poll_video"))
    assert not adapter.supports("speech")


def test_images_come_back_in_one_waiting_request(replicate):
    request = ImageRequest(model="replicate/flux-schnell", prompt="a red fox", n=2, size="768x512", seed=7,
                           output_format="png", steps=4)
    result = run(ADAPTER.generate_images(request, target_for(replicate)))
    [created] = replicate.requests
    assert created["path"] == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert created["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert created["headers"]["Prefer"] == "wait=9"  # within the 10 s the call may take
    assert created["body"] == {"input": {"prompt": "a red fox", "num_outputs": 2, "width": 768, "height": 512,
                                         "seed": 7, "num_inference_steps": 4, "output_format": "png"}}
    assert result.usage.images == 2 and result.usage.media_detail == "768x512"
    assert [image.content_type for image in result.images] == ["image/png", "image/png"]
    content = run(ADAPTER.fetch_media(result.images[1], target_for(replicate)))
    assert media_samples.png_size(content) == (768, 512)
    assert len(replicate.requests) == 1  # the public delivery URL needs no token


def test_a_prediction_that_outlasts_the_wait_is_polled_to_the_end(replicate):
    replicate.enqueue(Reply(outlasts_wait=True, states=("starting", "processing", "processing", "succeeded")))
    result = run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(replicate, total_timeout=300)))
    assert result.usage.images == 1
    prediction = next(iter(replicate.predictions.values()))
    assert replicate.calls("POST")[0]["headers"]["Prefer"] == "wait=60"
    assert [r["path"] for r in replicate.calls("GET")] == [f"/v1/predictions/{prediction.id}"] * 3


def test_a_failed_look_is_only_a_missed_look(replicate):
    replicate.enqueue(Reply(outlasts_wait=True, look_errors={0: 503}))
    result = run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(replicate)))
    assert result.usage.images == 1 and len(replicate.calls("POST")) == 1


def test_a_prediction_that_never_ends_times_out_and_is_cancelled(replicate):
    replicate.enqueue(Reply(outlasts_wait=True, states=("starting",)))
    with pytest.raises(errors.ProviderTimeout):
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(replicate, total_timeout=0.4)))
    prediction = next(iter(replicate.predictions.values()))
    assert prediction.canceled
    assert [r["path"] for r in replicate.calls("POST", "/cancel")] == [f"/v1/predictions/{prediction.id}/cancel"]


def test_versions_and_deployments_have_their_own_create_endpoints(replicate):
    run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"),
                                target_for(replicate, "stability-ai/sdxl:7762fd07cf82c948538e41f63f77d685e02b063e")))
    run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(replicate, "deployments/acme/my-flux")))
    first, second = replicate.calls("POST")
    assert first["path"] == "/v1/predictions"
    assert first["body"] == {"version": "7762fd07cf82c948538e41f63f77d685e02b063e", "input": {"prompt": "a fox"}}
    assert second["path"] == "/v1/deployments/acme/my-flux/predictions" and second["body"] == {"input": {"prompt": "a fox"}}


def test_files_on_the_apis_own_host_are_fetched_with_the_token(replicate):
    replicate.enqueue(Reply(private_files=True))
    target = target_for(replicate)
    result = run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox", size="64x64"), target))
    content = run(ADAPTER.fetch_media(result.images[0], target))
    assert media_samples.png_size(content) == (64, 64)
    assert replicate.calls("GET", ".png")[0]["headers"]["Authorization"] == f"Bearer {API_KEY}"


def test_a_model_declaring_other_field_names_gets_them_without_code(replicate):
    inputs = {"black-forest-labs/flux-kontext": {"fields": {"image": "input_image"}},
              "black-forest-labs/flux-dev": {"fields": {"guidance_scale": "guidance"}, "inputs": {"go_fast": False}}}
    run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox", guidance_scale=3.0, aspect_ratio="16:9"),
                                target_for(replicate, "black-forest-labs/flux-dev", model_inputs=inputs)))
    assert replicate.calls("POST")[0]["body"]["input"] == {"prompt": "a fox", "aspect_ratio": "16:9",
                                                            "guidance": 3.0, "go_fast": False}
    picture = media_samples.png(32, 32)
    edit = ImageRequest(model="m", prompt="make it night", images=[MediaInput(content=picture, content_type="image/png")])
    result = run(ADAPTER.edit_images(edit, target_for(replicate, "black-forest-labs/flux-kontext-pro",
                                                      model_inputs=inputs)))
    sent = replicate.calls("POST")[1]["body"]["input"]
    assert sent["input_image"].startswith("data:image/png;base64,") and "image" not in sent
    assert result.usage.images == 1 and result.usage.media_detail == ""


def test_edits_take_one_image_and_a_mask(replicate):
    with pytest.raises(errors.UnsupportedFeature, match="exactly one image"):
        run(ADAPTER.edit_images(ImageRequest(model="m", prompt="x", images=[MediaInput(url="https://a/1.png")] * 2),
                                target_for(replicate)))
    assert replicate.requests == []
    run(ADAPTER.edit_images(ImageRequest(model="m", prompt="x", images=[MediaInput(url="https://a/1.png")],
                                         mask=MediaInput(url="https://a/mask.png")), target_for(replicate)))
    sent = replicate.calls("POST")[0]["body"]["input"]
    assert (sent["image"], sent["mask"]) == ("https://a/1.png", "https://a/mask.png")


@pytest.mark.parametrize(("reply", "error", "message"), [
    (Reply(create_status=404, title="Not found", detail="The requested resource could not be found."),
     errors.ProviderNotFound, "no model or prediction for 'black-forest-labs/flux-schnell'"),
    (Reply(create_status=429, title="Too Many Requests", detail="Request was throttled.", headers={"Retry-After": "3"}),
     errors.ProviderRateLimited, "throttled"),
    (Reply(create_status=402, title="Insufficient credit", detail="You have insufficient credit to run this model."),
     errors.ProviderAuthFailed, "insufficient credit"),
    (Reply(create_status=500), errors.ProviderUnavailable, "500"),
    (Reply(required=("prompt", "seed")), errors.ProviderBadRequest, "input: seed is required"),
    (Reply(error="NSFW content detected. Try running it again, or try a different prompt."), errors.ContentFiltered,
     "NSFW content detected"),
    (Reply(error="CUDA error: out of memory"), errors.ProviderUnavailable, "CUDA error"),
])
def test_replicate_errors_map_to_the_gateways_own(replicate, reply, error, message):
    replicate.enqueue(reply)
    with pytest.raises(error, match=message) as caught:
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(replicate)))
    assert type(caught.value) is error
    if isinstance(caught.value, errors.ProviderRateLimited):
        assert caught.value.retry_after == 3


def test_a_refused_token_is_the_operators_problem_and_never_repeated(replicate):
    with pytest.raises(errors.ProviderAuthFailed) as caught:
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(replicate, key="r8_wrong")))
    assert caught.value.status == 502 and "r8_wrong" not in caught.value.message
    assert replicate.predictions == {}


def test_video_is_a_prediction_submitted_without_waiting_then_polled(replicate):
    replicate.enqueue(Reply(kind="video", states=("starting", "processing", "succeeded")))
    target = target_for(replicate, KLING, model_inputs={"kwaivgi/kling": {"fields": {"image": "start_image"}}})
    request = VideoRequest(model="replicate/kling-v2.1", prompt="waves", duration_seconds=5, size="1920x1080",
                           image=MediaInput(url="https://example.com/first.png"), seed=1)
    state = run(ADAPTER.submit_video(request, target))
    [created] = replicate.requests
    assert "Prefer" not in created["headers"]
    assert created["body"] == {"input": {"prompt": "waves", "seed": 1, "aspect_ratio": "16:9", "resolution": "1080p",
                                         "duration": 5, "start_image": "https://example.com/first.png"}}
    assert (state.status, state.progress) == ("queued", 0)

    state = VideoJobState(status=state.status, handle=json.loads(json.dumps(state.handle)))  # a restart
    polled = run(ADAPTER.poll_video(state, target))
    assert (polled.status, polled.progress) == ("in_progress", 50)  # from the model's progress bar
    done = run(ADAPTER.poll_video(polled, target))
    assert done.status == "completed" and done.usage.video_seconds == Decimal(5)
    assert done.usage.media_detail == "1080p" and done.video.content_type == "video/mp4"
    assert run(ADAPTER.fetch_media(done.video, target)) == media_samples.mp4(5)


def test_a_video_of_unasked_length_is_billed_by_what_the_file_says(replicate):
    replicate.enqueue(Reply(kind="video", states=("processing", "succeeded"), video_seconds=6))
    target = target_for(replicate, "minimax/video-01")
    state = run(ADAPTER.submit_video(VideoRequest(model="m", prompt="a cat"), target))
    assert state.status == "in_progress"
    done = run(ADAPTER.poll_video(state, target))
    assert done.usage.video_seconds == Decimal(6) and done.video.content == media_samples.mp4(6)


def test_a_failed_or_cancelled_video_says_so(replicate):
    replicate.enqueue(Reply(kind="video", states=("starting", "succeeded"), error="Prompt was flagged as sensitive"),
                      Reply(kind="video", states=("starting",)))
    target = target_for(replicate, "minimax/video-01")
    failed = run(ADAPTER.poll_video(run(ADAPTER.submit_video(VideoRequest(model="m", prompt="x"), target)), target))
    assert failed.status == "failed" and "flagged as sensitive" in failed.error

    state = run(ADAPTER.submit_video(VideoRequest(model="m", prompt="y"), target))
    run(ADAPTER.cancel_video(state, target))
    assert replicate.calls("POST", "/cancel")[0]["path"] == f"/v1/predictions/{state.handle['id']}/cancel"
    assert run(ADAPTER.poll_video(state, target)).status == "cancelled"
    run(ADAPTER.cancel_video(state, target))  # already over: no error


def test_a_prediction_replicate_forgot_is_failed(replicate):
    base = f"{replicate.base_url}/v1/predictions/gone"
    state = VideoJobState(status="in_progress", handle={"id": "gone", "get_url": base, "cancel_url": f"{base}/cancel"})
    polled = run(ADAPTER.poll_video(state, target_for(replicate, KLING)))
    assert polled.status == "failed" and "404" in polled.error
