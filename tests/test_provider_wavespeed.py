"""WaveSpeedAI: the adapter against a fake WaveSpeed API over real HTTP (predictions submitted and
polled, uploads, errors mapped), then its models through the gateway: images and edits with the
official openai SDK, speech with the SDK, video as a job over plain HTTP, each billed exactly and
kept from other_tenant."""

from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import Plan
from gateway import api_keys
from providers import errors
from providers.adapters.wavespeed import WaveSpeedAdapter
from providers.media_types import ImageRequest, MediaInput, SpeechRequest, VideoRequest
from providers.registry import get_adapter
from providers.types import Target
from tests.conftest import adapter_target, wait_for
from tests.conftest import run_adapter_call as run
from tests.fakes import media_samples
from tests.fakes.wavespeed_api import API_KEY, FakeWaveSpeed, Reply
from usage.models import MonthlySpend, UsageRecord

FLUX = "wavespeed-ai/flux-dev-ultra-fast"
ADAPTER = WaveSpeedAdapter()


@pytest.fixture(scope="session")
def wavespeed_server():
    fake = FakeWaveSpeed().start()
    yield fake
    fake.stop()


@pytest.fixture
def wavespeed(wavespeed_server):
    wavespeed_server.reset()
    return wavespeed_server


@pytest.fixture
def fake_wavespeed(catalog, wavespeed):
    """The catalog's `wavespeed` provider, pointed at the fake and polled every few milliseconds."""
    from tests.conftest import serve_queue_provider

    serve_queue_provider("wavespeed", wavespeed)
    return wavespeed


def target_for(fake: FakeWaveSpeed, model: str = FLUX, *, key: str = API_KEY, **options) -> Target:
    return adapter_target("wavespeed", fake, model, key=key, **options)


# --- the adapter ----------------------------------------------------------------------------------

def test_registry_serves_wavespeed_images_edits_video_and_speech():
    adapter = get_adapter("wavespeed")
    assert isinstance(adapter, WaveSpeedAdapter)
    assert all(adapter.supports(op) for op in ("generate_images", "edit_images", "submit_video", "poll_video",
                                               "speech"))
    assert not adapter.supports("transcribe")


def test_an_image_is_submitted_then_polled_until_completed(wavespeed):
    request = ImageRequest(model="wavespeed/flux", prompt="a red fox", n=2, size="768x512", seed=7, steps=4,
                           guidance_scale=3.5)
    result = run(ADAPTER.generate_images(request, target_for(wavespeed)))
    [submitted] = wavespeed.calls("POST")
    assert submitted["path"] == f"/api/v3/{FLUX}"
    assert submitted["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert submitted["body"] == {"prompt": "a red fox", "num_images": 2, "size": "768*512", "seed": 7,
                                 "guidance_scale": 3.5, "num_inference_steps": 4}
    [prediction] = wavespeed.predictions.values()
    assert [r["path"] for r in wavespeed.calls("GET", "/result")] == [f"/api/v3/predictions/{prediction.id}/result"] * 2
    assert result.usage.images == 2 and result.usage.media_detail == "768x512"
    content = run(ADAPTER.fetch_media(result.images[1], target_for(wavespeed)))
    assert media_samples.png_size(content) == (768, 512)


def test_a_failed_look_is_only_a_missed_look(wavespeed):
    wavespeed.enqueue(Reply(look_errors={0: 502}))
    result = run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(wavespeed)))
    assert result.usage.images == 1 and len(wavespeed.calls("POST")) == 1


def test_a_failed_prediction_is_mapped_by_its_error_code(wavespeed):
    wavespeed.enqueue(Reply(states=("created", "failed"), error="The content contains sensitive information.",
                            error_code=1200))
    with pytest.raises(errors.ContentFiltered, match="sensitive"):
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(wavespeed)))
    wavespeed.enqueue(Reply(states=("created", "processing", "failed"), error="Internal error", error_code=5000))
    with pytest.raises(errors.ProviderUnavailable, match="Internal error"):
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(wavespeed)))


def test_a_prediction_that_never_ends_times_out(wavespeed):
    wavespeed.enqueue(Reply(states=("created", "processing")))
    with pytest.raises(errors.ProviderTimeout):
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(wavespeed, total_timeout=0.3)))


@pytest.mark.parametrize(("status", "error"), [(401, errors.ProviderAuthFailed), (402, errors.ProviderAuthFailed),
                                               (404, errors.ProviderNotFound), (429, errors.ProviderRateLimited),
                                               (400, errors.ProviderBadRequest), (500, errors.ProviderUnavailable)])
def test_submit_errors_are_mapped(wavespeed, status, error):
    wavespeed.enqueue(Reply(submit_status=status, message="scripted refusal", headers={"Retry-After": "3"}))
    with pytest.raises(error) as raised:
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(wavespeed)))
    assert raised.value.upstream_status == status
    if status == 429:
        assert raised.value.retry_after == 3.0


def test_a_wrong_key_never_leaks_into_the_message(wavespeed):
    with pytest.raises(errors.ProviderAuthFailed) as raised:
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox"), target_for(wavespeed, key="wsk-wrong")))
    assert "wsk-wrong" not in raised.value.message


def test_uploaded_images_go_to_wavespeeds_media_store_first(wavespeed):
    face_swap = {"wavespeed-ai/image-face-swap": {"image_fields": ["image", "face_image"],
                                                  "fields": {"prompt": None}}}
    wavespeed.enqueue(Reply(required=("image", "face_image")))
    photo = media_samples.png(64, 48)
    request = ImageRequest(model="m", prompt="swap the face", images=[
        MediaInput(content=photo, content_type="image/png", filename="photo.png"),
        MediaInput(url="https://example.com/face.png")])
    with pytest.raises(errors.UnsupportedFeature, match="takes 2 image"):
        run(ADAPTER.edit_images(ImageRequest(model="m", prompt="x", images=request.images[:1]),
                                target_for(wavespeed, "wavespeed-ai/image-face-swap", model_inputs=face_swap)))
    wavespeed.reset()
    wavespeed.enqueue(Reply(required=("image", "face_image")))
    run(ADAPTER.edit_images(request, target_for(wavespeed, "wavespeed-ai/image-face-swap", model_inputs=face_swap)))
    [upload] = wavespeed.calls("POST", "/media/upload/binary")
    assert upload["body"]["file"] == ("photo.png", "image/png", photo)
    [submitted] = wavespeed.calls("POST", "/image-face-swap")
    assert submitted["body"]["face_image"] == "https://example.com/face.png"
    assert submitted["body"]["image"].startswith(f"{wavespeed.base_url}/files/upload-")
    assert "prompt" not in submitted["body"]


def test_an_inpainting_edit_sends_image_and_mask(wavespeed):
    mask = media_samples.png(32, 32, (255, 255, 255))
    request = ImageRequest(model="m", prompt="a hat", size="512x512", images=[
        MediaInput(url="https://example.com/cat.png")], mask=MediaInput(content=mask, content_type="image/png"))
    run(ADAPTER.edit_images(request, target_for(wavespeed)))
    submitted = wavespeed.calls("POST", FLUX)[0]["body"]
    assert submitted["image"] == "https://example.com/cat.png"
    assert submitted["mask_image"].startswith(f"{wavespeed.base_url}/files/upload-")
    [upload] = wavespeed.calls("POST", "/media/upload/binary")  # the mask; the image was a URL already
    assert upload["body"]["file"][2] == mask


def test_speech_sends_text_and_voice_and_fetches_the_audio(wavespeed):
    wavespeed.enqueue(Reply(kind="audio", required=("text", "voice_id")))
    result = run(ADAPTER.speech(SpeechRequest(model="m", input="Hello there", voice="Wise_Woman", speed=1.5),
                                target_for(wavespeed, "minimax/speech-02-hd")))
    assert wavespeed.calls("POST")[0]["body"] == {"text": "Hello there", "voice_id": "Wise_Woman", "speed": 1.5}
    assert result.audio.endswith(b"Hello there") and result.content_type == "audio/mpeg"
    assert result.usage.characters == 11
    with pytest.raises(errors.UnsupportedFeature):
        run(ADAPTER.speech(SpeechRequest(model="m", input="Hi", instructions="whisper"), target_for(wavespeed)))


def test_a_video_is_submitted_then_polled_one_look_at_a_time(wavespeed):
    wavespeed.enqueue(Reply(kind="video", states=("created", "processing", "completed")))
    target = target_for(wavespeed, "wavespeed-ai/hunyuan-video-1.5/text-to-video",
                        model_inputs={"wavespeed-ai/hunyuan-video": {"fields": {"resolution": None,
                                                                                "aspect_ratio": None}}})
    state = run(ADAPTER.submit_video(VideoRequest(model="m", prompt="waves", duration_seconds=8, size="1280x720",
                                                  resolution="720p", seed=3), target))
    assert state.status == "queued"
    assert wavespeed.calls("POST")[0]["body"] == {"prompt": "waves", "seed": 3, "size": "1280*720", "duration": 8}
    state = run(ADAPTER.poll_video(state, target))
    assert state.status == "in_progress"
    state = run(ADAPTER.poll_video(state, target))
    assert state.status == "completed" and state.usage.video_seconds == 8 and state.usage.media_detail == "720p"
    assert run(ADAPTER.fetch_media(state.video, target)) == media_samples.mp4(8)


# --- through the gateway ----------------------------------------------------------------------------

def test_flux_ultra_fast_images_through_the_sdk_are_billed_per_image(client, other_client, fake_wavespeed, tenant,
                                                                     other_tenant):
    answer = client.images.generate(model="wavespeed/wavespeed-ai/flux-dev-ultra-fast", prompt="a lighthouse",
                                    n=2, size="1024x768", extra_body={"seed": 11})
    assert len(answer.data) == 2
    [submitted] = fake_wavespeed.calls("POST")
    assert submitted["body"] == {"prompt": "a lighthouse", "num_images": 2, "size": "1024*768", "seed": 11}
    image = httpx.get(answer.data[0].url)
    assert image.status_code == 200 and media_samples.png_size(image.content) == (1024, 768)
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.model, record.provider, record.capability) == ("wavespeed/wavespeed-ai/flux-dev-ultra-fast",
                                                                  "wavespeed", "image")
    assert (record.images, record.cost) == (2, Decimal("0.010"))
    media_id = answer.data[0].url.split("/media/")[1].split("/")[0]
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{media_id}", cast_to=object)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_background_removal_is_an_edit_of_the_uploaded_image(client, other_client, fake_wavespeed, tenant):
    fake_wavespeed.enqueue(Reply(required=("image",)))
    photo = media_samples.png(40, 30)
    answer = client.images.edit(model="wavespeed/wavespeed-ai/image-background-remover", image=("cat.png", photo,
                                "image/png"), prompt="remove the background")
    [upload] = fake_wavespeed.calls("POST", "/media/upload/binary")
    assert upload["body"]["file"][2] == photo
    [submitted] = fake_wavespeed.calls("POST", "/image-background-remover")
    assert list(submitted["body"]) == ["image"]  # the model takes the image alone
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.images, record.cost) == (1, Decimal("0.005"))
    media_id = answer.data[0].url.split("/media/")[1].split("/")[0]
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{media_id}", cast_to=object)


def test_face_swap_takes_the_photo_and_the_face(client, fake_wavespeed, tenant):
    fake_wavespeed.enqueue(Reply(required=("image", "face_image")))
    with pytest.raises(openai.BadRequestError):
        client.images.edit(model="wavespeed/wavespeed-ai/image-face-swap",
                           image=[("photo.png", media_samples.png(40, 30), "image/png")], prompt="swap")
    client.images.edit(model="wavespeed/wavespeed-ai/image-face-swap", prompt="swap in the face",
                       image=[("photo.png", media_samples.png(40, 30), "image/png"),
                              ("face.png", media_samples.png(20, 20), "image/png")])
    submitted = fake_wavespeed.calls("POST", "/image-face-swap")[-1]["body"]
    assert set(submitted) == {"image", "face_image"}
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant, images=1).first(), what="the usage record")
    assert record.cost == Decimal("0.010")


def test_speech_through_the_sdk_is_billed_per_character(client, fake_wavespeed, tenant, other_tenant):
    fake_wavespeed.enqueue(Reply(kind="audio", required=("text", "voice_id")))
    audio = client.audio.speech.create(model="wavespeed/minimax/speech-02-hd", input="Good morning, Alice.",
                                       voice="Calm_Woman", response_format="mp3")
    assert audio.content.endswith(b"Good morning, Alice.")
    assert fake_wavespeed.calls("POST")[0]["body"] == {"text": "Good morning, Alice.", "voice_id": "Calm_Woman"}
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.capability, record.characters) == ("speech", 20)
    assert record.cost == Decimal("0.001")  # 20 characters at $50 a million
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def finished(http, video_id: str) -> dict:
    def done():
        body = http.get(f"/videos/{video_id}").json()
        return body if body["status"] not in ("queued", "in_progress") else None
    return wait_for(done, what=f"video {video_id} to finish")


def test_hunyuan_video_is_a_job_billed_per_second_at_its_resolution(http, other_http, video_worker, fake_wavespeed,
                                                                    tenant, other_tenant):
    fake_wavespeed.enqueue(Reply(kind="video", states=("created", "processing", "processing", "completed")))
    created = http.post("/videos", json={"model": "wavespeed/wavespeed-ai/hunyuan-video-1.5/text-to-video",
                                         "prompt": "a paper boat in the rain", "seconds": "8", "size": "1280x720"})
    assert created.status_code == 200, created.text
    video = created.json()
    done = finished(http, video["id"])
    assert done["status"] == "completed" and done["provider"] == "wavespeed"
    [submitted] = fake_wavespeed.calls("POST")
    assert submitted["body"] == {"prompt": "a paper boat in the rain", "size": "1280*720", "duration": 8}
    content = http.get(f"/videos/{video['id']}/content")
    assert content.status_code == 200 and content.content == media_samples.mp4(8)
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.capability, record.video_seconds, record.media_detail) == ("video", Decimal(8), "720p")
    assert record.cost == Decimal("0.32")  # 8 s at $0.04 a second (720p)
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0
    for path in (f"/videos/{video['id']}", f"/videos/{video['id']}/content"):
        assert other_http.get(path).status_code == 404
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


@pytest.fixture
def full_hd(tenant):
    """The tenant's plan (Pro) raised to 1080p video, as an operator would in the admin."""
    Plan.objects.filter(slug="pro").update(max_video_resolution=1080)
    api_keys.forget_keys()


def test_a_failed_wavespeed_video_costs_nothing(http, video_worker, fake_wavespeed, tenant, full_hd):
    fake_wavespeed.enqueue(Reply(kind="video", states=("created", "failed"), error="Media access failed",
                                 error_code=1402))
    video = http.post("/videos", json={"model": "wavespeed/lightricks/ltx-2-pro/text-to-video",
                                       "prompt": "a comet", "seconds": "6"}).json()
    done = finished(http, video["id"])
    assert done["status"] == "failed" and "Media access failed" in done["error"]["message"]
    [submitted] = fake_wavespeed.calls("POST")
    assert submitted["body"] == {"prompt": "a comet", "duration": 6}  # LTX-2 Pro takes no size or seed
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert (record.video_seconds, record.cost) == (0, 0)
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0


# --- in chat ----------------------------------------------------------------------------------------

def test_chat_flags_pick_the_size_by_resolution_and_set_the_guidance(client, fake_wavespeed, tenant):
    answer = client.chat.completions.create(model="image/wavespeed/wavespeed-ai/flux-dev-ultra-fast", messages=[
        {"role": "user", "content": "a harbour at dawn --resolution 720p --ratio 16:9 --guidance 3.5 --seed 2"}])
    assert "![image 1](" in answer.choices[0].message.content
    [submitted] = fake_wavespeed.calls("POST")
    assert submitted["body"] == {"prompt": "a harbour at dawn", "size": "1280*720", "seed": 2, "guidance_scale": 3.5}
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.images, record.media_detail, record.cost) == (1, "1280x720", Decimal("0.005"))

    for content, message in [("a harbour --resolution 1080p", "has no size at 1080p; its sizes are: 1024x1024"),
                             ("a harbour --resolution 720p --size 1280x720", "not both"),
                             ("a harbour --resolution big", "takes lines")]:
        with pytest.raises(openai.BadRequestError, match=message):
            client.chat.completions.create(model="image/wavespeed/wavespeed-ai/flux-dev-ultra-fast",
                                           messages=[{"role": "user", "content": content}])


def test_help_in_chat_lists_every_flag_and_what_the_model_takes(client, fake_wavespeed, tenant):
    answer = client.chat.completions.create(model="image/wavespeed/wavespeed-ai/flux-dev-ultra-fast",
                                            messages=[{"role": "user", "content": "/help"}])
    text = answer.choices[0].message.content
    for flag in ("--size", "--ratio", "--resolution", "--n", "--steps", "--guidance", "--seed", "--duration"):
        assert f"`{flag}`" in text
    assert "sizes 1024x1024, 1024x768" in text and "extras seed, guidance_scale, steps, strength" in text
    streamed = "".join(choice.delta.content or "" for chunk in client.chat.completions.create(
        model="image/wavespeed/wavespeed-ai/flux-dev-ultra-fast", stream=True,
        messages=[{"role": "user", "content": "/help"}]) for choice in chunk.choices)
    assert streamed == text
    assert not fake_wavespeed.requests
    assert not UsageRecord.objects.filter(tenant=tenant).exists()  # help is free
