"""image/<model> through /v1/chat/completions: flags in the prompt, markdown links to our signed
URLs, streamed progress lines, the media request's usage and limits."""

import re
from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import Plan
from gateway.v1 import media_chat
from media.models import MediaFile, VideoJob
from tests.fakes.openai_images import ImageReply
from tests.fakes.png import png_size
from tests.fakes.video_jobs import FAKE_MP4, VideoScript
from usage.models import MonthlySpend, UsageRecord

LINK = re.compile(r"!\[image (\d+)\]\((http[^)]+)\)")


def image_requests(fake_openai) -> list[dict]:
    return [r for r in fake_openai.requests if r.get("path", "").startswith("/v1/images/")]


def test_an_image_model_answers_in_chat_with_markdown_links(client, other_client, fake_openai, tenant, other_tenant):
    answer = client.chat.completions.create(model="image/openai/dall-e-3", messages=[
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": "a fox in the snow --size 1792x1024"}])

    assert answer.model == "image/openai/dall-e-3"
    links = LINK.findall(answer.choices[0].message.content)
    assert [number for number, _ in links] == ["1"]
    assert png_size(httpx.get(links[0][1]).content) == (4, 4)
    sent = image_requests(fake_openai)[0]["body"]
    assert (sent["prompt"], sent["size"], sent["quality"]) == ("a fox in the snow", "1792x1024", "standard")
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.model, record.capability, record.images) == ("openai/dall-e-3", "image", 1)
    assert (record.media_detail, record.cost) == ("1792x1024/standard", Decimal("0.08"))
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{MediaFile.objects.get(tenant=tenant).id}", cast_to=object)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_a_streamed_answer_shows_progress_then_the_links(client, fake_openai, tenant, monkeypatch):
    monkeypatch.setattr(media_chat, "PROGRESS_SECONDS", 0.05)
    fake_openai.enqueue(ImageReply(hold=True))
    stream = client.chat.completions.create(model="image/openai/dall-e-2", stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "two moons --n 2 --size 256x256"}])
    pieces, usage = [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
                if choice.delta.content.startswith("Still working"):
                    fake_openai.release()  # the provider answers once the client has seen progress

    assert pieces[0] == "Generating 2 images with openai/dall-e-2 (256x256).\n\n"
    assert any(piece.startswith("Still working (") for piece in pieces)
    assert [number for number, _ in LINK.findall(pieces[-1])] == ["1", "2"]
    assert (usage.prompt_tokens, usage.completion_tokens) == (0, 0)
    record = UsageRecord.objects.get(tenant=tenant)  # settled before the stream's end
    assert (record.images, record.cost) == (2, Decimal("0.032"))


def test_flags_are_checked_like_the_endpoints_parameters(client, fake_stability, tenant):
    answer = client.chat.completions.create(model="image/stability/stable-image-core", messages=[
        {"role": "user", "content": "a tall tower --ratio 9:16 --seed 5"}])
    assert LINK.search(answer.choices[0].message.content)
    assert fake_stability.requests[0]["fields"] == {"prompt": "a tall tower", "aspect_ratio": "9:16", "seed": "5"}
    assert UsageRecord.objects.get(tenant=tenant).media_detail == "768x1344"

    cases = [("a tower --steps 30", "does not take 'steps'"),
             ("a tower --foo 1", "Unknown flag --foo; use --duration, --guidance, --n, --ratio, --resolution, --seed, "
                                 "--size, --steps"),
             ("a tower --duration 5", "--duration is for video models"),
             ("a tower --ratio 7:5", "aspect_ratio '7:5' is not available"),
             ("--size 1024x1024", "Describe what to make")]
    for content, message in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="image/stability/stable-image-core",
                                           messages=[{"role": "user", "content": content}])
        assert message in refused.value.message, content
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="image/openai/dall-e-9", messages=[{"role": "user", "content": "x"}])
    assert len(fake_stability.requests) == 1


def test_limits_refuse_before_the_stream_starts_and_failures_end_it_with_an_error(client, fake_openai, tenant):
    Plan.objects.filter(slug="pro").update(images_per_month=1)
    fake_openai.enqueue(*[ImageReply(status=503, error_type="server_error")] * 3)
    stream = client.chat.completions.create(model="image/openai/dall-e-2", stream=True,
                                            messages=[{"role": "user", "content": "a storm"}])
    with pytest.raises(openai.APIError) as failed:
        for _ in stream:
            pass
    assert "fake upstream failed" in str(failed.value.message)
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.images, record.cost, record.http_status) == (0, 0, 502)
    assert MonthlySpend.objects.get(tenant=tenant).images == 0  # the failure gave its image back

    client.chat.completions.create(model="image/openai/dall-e-2", messages=[{"role": "user", "content": "calm"}])
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="image/openai/dall-e-2", stream=True,
                                       messages=[{"role": "user", "content": "one more"}])
    assert refused.value.code == "media_limit_exceeded"
    assert len(image_requests(fake_openai)) == 4


VIDEO_LINK = re.compile(r"\[video 1 \((\d+)s\)\]\((http[^)]+)\)")
VEO_FAST = "gemini/veo-3.1-fast-generate-preview"


def test_a_video_model_answers_in_chat_once_its_job_is_done(client, other_client, fake_veo, video_worker, tenant):
    answer = client.chat.completions.create(model=f"video/{VEO_FAST}", messages=[
        {"role": "user", "content": "a lighthouse in a storm --duration 6 --ratio 9:16 --resolution 720p"}])

    [(seconds, url)] = VIDEO_LINK.findall(answer.choices[0].message.content)
    assert seconds == "6" and httpx.get(url).content == FAKE_MP4
    sent = fake_veo.videos.submissions[0]["body"]
    assert sent["instances"][0]["prompt"] == "a lighthouse in a storm"
    assert (sent["parameters"]["durationSeconds"], sent["parameters"]["aspectRatio"]) == (6, "9:16")
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.model, record.capability, record.video_seconds) == (VEO_FAST, "video", Decimal(6))
    assert record.cost == Decimal("0.90")  # 6 s x $0.15
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/videos/{VideoJob.objects.get(tenant=tenant).id}", cast_to=object)


def test_a_streamed_video_chat_shows_progress_then_the_link(client, fake_veo, video_worker, tenant):
    chunks = list(client.chat.completions.create(model=f"video/{VEO_FAST}", stream=True, messages=[
        {"role": "user", "content": "waves on a beach --duration 4"}]))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text.startswith(f"Generating a 4s video with {VEO_FAST} (job video_")
    assert VIDEO_LINK.search(text) and chunks[-1].choices[0].finish_reason == "stop"
    assert UsageRecord.objects.get(tenant=tenant).video_seconds == Decimal(4)


def test_video_chat_help_lists_the_flags_free(client, fake_veo, tenant):
    answer = client.chat.completions.create(model=f"video/{VEO_FAST}", messages=[{"role": "user", "content": "/help"}])
    text = answer.choices[0].message.content
    assert all(f"--{flag}" in text for flag in ("duration", "ratio", "resolution", "size", "seed"))
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_a_video_job_that_fails_is_an_error_and_not_billed(client, fake_veo, video_worker, tenant):
    fake_veo.videos.enqueue(VideoScript(outcome="failed", failure="The prompt was blocked by safety filters."))
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model=f"video/{VEO_FAST}", messages=[
            {"role": "user", "content": "something forbidden --duration 4"}])
    assert failed.value.status_code == 502 and "safety filters" in failed.value.message
    assert UsageRecord.objects.get(tenant=tenant).cost == 0
