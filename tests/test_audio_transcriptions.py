"""Transcription through POST /v1/audio/transcriptions, called with the official SDK: whisper-1
(per minute, every response format), gpt-4o-transcribe (per token, as reported) and Gemini audio
understanding, against fakes of their wire formats, with short WAVs made by the standard library."""

import base64
from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import Plan
from gateway.api_keys import issue_api_key
from tests.conftest import wait_for
from tests.fakes.gemini_audio_upstream import DEFAULT_TRANSCRIPT as GEMINI_TRANSCRIPT
from tests.fakes.media_samples import wav
from tests.fakes.openai_audio import DEFAULT_TRANSCRIPT, TranscriptReply
from tests.test_management_api_keys import management_key
from usage.models import MonthlySpend, UsageRecord

MILLION = Decimal(1_000_000)
WHISPER_PER_MINUTE = Decimal("0.006")


def record_of(raw) -> UsageRecord:
    return wait_for(lambda: UsageRecord.objects.filter(request_id=raw.headers["x-tollgate-request-id"]).first(),
                    what="the usage record")


def transcription_requests(fake_openai) -> list[dict]:
    return [r for r in fake_openai.requests if r.get("path") == "/v1/audio/transcriptions"]


def test_whisper_transcribes_a_wav_billed_by_the_seconds_openai_bills(client, fake_openai, tenant, other_tenant,
                                                                      gateway_url):
    audio = wav(1.5)
    raw = client.audio.transcriptions.with_raw_response.create(model="openai/whisper-1",
                                                               file=("hello.wav", audio, "audio/wav"), language="en",
                                                               prompt="Tollgate", temperature=0.2)
    answer = raw.parse()

    assert answer.text == DEFAULT_TRANSCRIPT
    assert (answer.usage.type, answer.usage.seconds) == ("duration", 2.0)
    sent = transcription_requests(fake_openai)[0]
    # Asked for verbose_json, whatever the client wants: its duration is what whisper is billed by.
    assert sent["body"] == {"model": "whisper-1", "response_format": "verbose_json", "language": "en",
                            "prompt": "Tollgate", "temperature": "0.2"}
    assert [(f["field"], f["filename"], f["content_type"], f["content"]) for f in sent["files"]] == [
        ("file", "hello.wav", "audio/wav", audio)]

    record = record_of(raw)
    assert (record.tenant_id, record.model, record.capability) == (tenant.pk, "openai/whisper-1", "transcription")
    # OpenAI bills whole seconds (the fake rounds 1.5 up): 2 s at $0.006 a minute.
    assert record.audio_seconds == Decimal(2)
    assert record.cost == 2 * WHISPER_PER_MINUTE / 60 == Decimal("0.0002")
    assert record.reserved == 2 * WHISPER_PER_MINUTE / 60  # the WAV's 1.5 s, in whole seconds
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.audio_seconds, ledger.reserved, ledger.settled) == (2, 0, record.cost)

    charlies = httpx.get(f"{gateway_url}/api/tenants/alice-co/usage/records/",
                         headers={"Authorization": f"Bearer {management_key(other_tenant)}"})
    assert charlies.status_code == 404
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_whisper_answers_text_srt_vtt_and_verbose_json_with_words(client, fake_openai, tenant):
    audio = ("two.wav", wav(2.0), "audio/wav")
    text = client.audio.transcriptions.create(model="openai/whisper-1", file=audio, response_format="text")
    assert text == DEFAULT_TRANSCRIPT + "\n"

    srt = client.audio.transcriptions.create(model="openai/whisper-1", file=audio, response_format="srt")
    assert srt == ("1\n00:00:00,000 --> 00:00:01,000\nHello from the fake transcriber.\n\n"
                   "2\n00:00:01,000 --> 00:00:02,000\nIt heard two sentences.\n\n")

    vtt = client.audio.transcriptions.create(model="openai/whisper-1", file=audio, response_format="vtt")
    assert vtt == ("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello from the fake transcriber.\n\n"
                   "00:00:01.000 --> 00:00:02.000\nIt heard two sentences.\n\n")

    verbose = client.audio.transcriptions.create(model="openai/whisper-1", file=audio,
                                                 response_format="verbose_json", timestamp_granularities=["word"])
    assert (verbose.language, verbose.duration, verbose.text) == ("english", 2.0, DEFAULT_TRANSCRIPT)
    assert [(s.start, s.end) for s in verbose.segments] == [(0.0, 1.0), (1.0, 2.0)]
    assert [w.word for w in verbose.words][:3] == ["Hello", "from", "the"]
    assert transcription_requests(fake_openai)[-1]["granularities"] == ["word"]

    records = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).count() == 4 and UsageRecord.objects.filter(
        tenant=tenant), what="four records")
    assert {(r.audio_seconds, r.cost) for r in records} == {(Decimal(2), Decimal("0.0002"))}


def test_gpt_4o_transcribe_is_billed_the_tokens_it_reports(client, fake_openai, tenant):
    raw = client.audio.transcriptions.with_raw_response.create(model="openai/gpt-4o-transcribe",
                                                               file=("note.wav", wav(1.5), "audio/wav"),
                                                               prompt="a short note")
    answer = raw.parse()

    audio_tokens, text_tokens, output_tokens = 15, 3, len(DEFAULT_TRANSCRIPT.split())  # the fake's counts
    assert answer.usage.type == "tokens"
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (audio_tokens + text_tokens, output_tokens)
    assert transcription_requests(fake_openai)[0]["body"]["response_format"] == "json"

    record = record_of(raw)
    assert (record.input_tokens, record.output_tokens) == (18, output_tokens)
    assert record.audio_seconds == Decimal("1.5")  # from the WAV's header
    assert record.cost == (18 * Decimal("6.00") + output_tokens * Decimal("10.00")) / MILLION
    # Reserved: 2 whole seconds at the catalog's 20 tokens in and 10 out a second, plus the prompt
    # and the instruction allowance.
    assert record.reserved == ((2 * 20 + len(b"a short note") + 256) * Decimal("6.00")
                               + 2 * 10 * Decimal("10.00")) / MILLION

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="openai/gpt-4o-transcribe", file=("n.wav", wav(1.0), "audio/wav"),
                                           response_format="srt")
    assert "response_format 'srt' is not available for 'openai/gpt-4o-transcribe'; use one of: json, text" in (
        refused.value.message)


def test_audio_that_is_not_wav_reserves_the_most_its_size_can_hold(client, fake_openai, tenant):
    fake_openai.enqueue(TranscriptReply(duration=3.2))
    mp3 = b"ID3\x04\x00\x00" + b"\x00" * 4994  # 5,000 bytes: at most 5 s at 8 kbit/s
    raw = client.audio.transcriptions.with_raw_response.create(model="openai/whisper-1",
                                                               file=("memo.mp3", mp3, "audio/mpeg"))

    assert raw.parse().text == DEFAULT_TRANSCRIPT
    record = record_of(raw)
    assert record.reserved == 5 * WHISPER_PER_MINUTE / 60
    assert (record.audio_seconds, record.cost) == (Decimal(4), 4 * WHISPER_PER_MINUTE / 60)  # 3.2 s, billed as 4
    assert MonthlySpend.objects.get(tenant=tenant).audio_seconds == 4


def test_gemini_hears_the_audio_inline_and_bills_its_tokens(client, fake_gemini_audio, tenant, other_tenant):
    audio = wav(2.0)
    raw = client.audio.transcriptions.with_raw_response.create(model="gemini/gemini-2.5-flash-transcribe",
                                                               file=("de.wav", audio, "audio/wav"), language="de",
                                                               prompt="Tollgate, Zürich")
    answer = raw.parse()

    assert answer.text == GEMINI_TRANSCRIPT
    sent = fake_gemini_audio.requests[0]
    assert sent["model"] == "gemini-2.5-flash"
    instruction, inline = sent["body"]["contents"][0]["parts"]
    assert instruction["text"].startswith("Transcribe the speech in this audio exactly as it is spoken.")
    assert "ISO 639-1 code 'de'" in instruction["text"] and "Tollgate, Zürich" in instruction["text"]
    assert inline == {"inlineData": {"mimeType": "audio/wav", "data": base64.b64encode(audio).decode()}}

    record = record_of(raw)
    text_tokens = len(instruction["text"].split())
    assert record.input_tokens == text_tokens + 64  # 32 audio tokens a second
    assert record.output_tokens == len(GEMINI_TRANSCRIPT.split())
    assert record.audio_seconds == Decimal(2)
    assert record.cost == (record.input_tokens * Decimal("1.00") + record.output_tokens * Decimal("2.50")) / MILLION
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (record.input_tokens, record.output_tokens)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_what_the_model_does_not_take_is_refused_before_any_call(client, api_key, fake_openai, tenant, gateway_url):
    audio = ("a.wav", wav(1.0), "audio/wav")
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="openai/whisper-1", file=audio, language="english")
    assert "language must be an ISO 639-1 code such as 'en'" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="openai/whisper-1", file=audio, timestamp_granularities=["word"])
    assert "timestamp_granularities[] needs response_format verbose_json" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="openai/gpt-4o-mini-transcribe", file=audio, temperature=1.5)
    assert "temperature must be between 0 and 1, not 1.5" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="openai/tts-1", file=audio)
    assert "'openai/tts-1' is a speech model; call it at /v1/audio/speech" in refused.value.message

    headers = {"Authorization": f"Bearer {api_key}"}
    no_file = httpx.post(f"{gateway_url}/v1/audio/transcriptions", headers=headers, data={"model": "openai/whisper-1"},
                         files={"other": ("x", b"x")})
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    as_json = httpx.post(f"{gateway_url}/v1/audio/transcriptions", headers=headers, json={"model": "openai/whisper-1"})
    assert as_json.status_code == 400 and as_json.json()["error"]["code"] == "invalid_content_type"

    assert transcription_requests(fake_openai) == []
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_transcription_not_on_the_plan_is_refused(sdk_for, tenant, other_client, fake_openai):
    tenant.subscription.plan = Plan.objects.get(slug="basic")
    tenant.subscription.save()
    basic = sdk_for(issue_api_key(tenant, name="basic key").raw)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        basic.audio.transcriptions.create(model="openai/whisper-1", file=("a.wav", wav(1.0), "audio/wav"))
    assert refused.value.code == "capability_not_on_plan"
    assert transcription_requests(fake_openai) == []
    assert other_client.audio.transcriptions.create(model="openai/whisper-1",
                                                    file=("a.wav", wav(1.0), "audio/wav")).text


def test_monthly_transcription_minutes_are_a_hard_limit(client, other_client, fake_openai, tenant, other_tenant):
    Plan.objects.filter(slug="pro").update(transcription_minutes_per_month=1)
    forty_seconds = ("long.wav", wav(40.0, rate=1000), "audio/wav")
    client.audio.transcriptions.create(model="openai/whisper-1", file=forty_seconds)

    with pytest.raises(openai.RateLimitError) as refused:
        client.audio.transcriptions.create(model="openai/whisper-1", file=forty_seconds)
    assert refused.value.code == "media_limit_exceeded"
    assert ("Monthly transcription limit reached: plan Pro includes 60 seconds of audio transcribed per month, 40 are "
            "used or in progress, and this request could use up to 40") in refused.value.message
    assert len(transcription_requests(fake_openai)) == 1

    other_client.audio.transcriptions.create(model="openai/whisper-1", file=forty_seconds)
    assert MonthlySpend.objects.get(tenant=tenant).audio_seconds == 40
    assert MonthlySpend.objects.get(tenant=other_tenant).audio_seconds == 40


def test_a_failed_transcription_costs_nothing_and_gives_the_minutes_back(client, fake_openai, tenant):
    fake_openai.enqueue(TranscriptReply(status=400, error_message="Audio file might be corrupted or unsupported."))
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="openai/whisper-1", file=("a.wav", wav(3.0), "audio/wav"))
    assert "Audio file might be corrupted" in refused.value.message

    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the failed record")
    assert (record.outcome, record.audio_seconds, record.cost) == ("error", 0, 0)
    assert record.reserved == 3 * WHISPER_PER_MINUTE / 60
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.audio_seconds, ledger.reserved, ledger.settled) == (0, 0, 0)
