"""Speech through POST /v1/audio/speech (and /v1/audio/generation), called with the official SDK:
OpenAI's tts-1 and tts-1-hd (per character), gpt-4o-mini-tts (per token, as reported), Gemini TTS
(PCM made WAV) and a fal speech model, against fakes of their wire formats."""

import io
import math
import wave
from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import Plan
from gateway.api_keys import issue_api_key
from tests.conftest import wait_for
from tests.fakes.fal_queue import Reply as FalReply
from tests.fakes.openai_audio import SpeechReply, audio_for
from tests.test_management_api_keys import management_key
from usage.models import MonthlySpend, UsageRecord

MILLION = Decimal(1_000_000)


def record_of(raw) -> UsageRecord:
    return wait_for(lambda: UsageRecord.objects.filter(request_id=raw.headers["x-tollgate-request-id"]).first(),
                    what="the usage record")


def speech_requests(fake_openai) -> list[dict]:
    return [r for r in fake_openai.requests if r.get("path") == "/v1/audio/speech"]


def wav_of(content: bytes) -> tuple[int, int, int]:
    """(channels, sample rate, frames) of a WAV file."""
    with wave.open(io.BytesIO(content)) as audio:
        return audio.getnchannels(), audio.getframerate(), audio.getnframes()


def test_tts_1_answers_mp3_billed_per_character(client, fake_openai, tenant, other_tenant, gateway_url):
    text = "The quick brown fox jumps over the lazy dog."
    raw = client.audio.speech.with_raw_response.create(model="openai/tts-1", voice="alloy", input=text)

    assert raw.headers["content-type"] == "audio/mpeg"
    assert raw.content == audio_for(text, "mp3")
    sent = speech_requests(fake_openai)[0]
    assert sent["body"] == {"model": "tts-1", "input": text, "response_format": "mp3", "voice": "alloy"}
    assert sent["headers"]["Authorization"] == "Bearer sk-fake-upstream"

    record = record_of(raw)
    assert (record.tenant_id, record.model, record.capability, record.outcome) == (
        tenant.pk, "openai/tts-1", "speech", "ok")
    assert record.characters == len(text) == 44
    assert record.cost == record.reserved == 44 * Decimal("15.00") / MILLION
    assert Decimal(raw.headers["x-tollgate-cost"]) == record.cost
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.characters, ledger.reserved, ledger.settled) == (44, 0, record.cost)

    # Alice's usage is hers: Charlie's management key does not reach it, and he has none.
    alices = httpx.get(f"{gateway_url}/api/tenants/alice-co/usage/records/",
                       headers={"Authorization": f"Bearer {management_key(tenant)}"})
    assert [row["id"] for row in alices.json()["results"]] == [record.request_id]
    charlies = httpx.get(f"{gateway_url}/api/tenants/alice-co/usage/records/",
                         headers={"Authorization": f"Bearer {management_key(other_tenant)}"})
    assert charlies.status_code == 404
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_generation_alias_speaks_wav_at_the_speed_asked(api_key, fake_openai, tenant, gateway_url):
    text = "Slowly now."
    answer = httpx.post(f"{gateway_url}/v1/audio/generation", headers={"Authorization": f"Bearer {api_key}"},
                        json={"model": "openai/tts-1-hd", "voice": "nova", "input": text, "response_format": "wav",
                              "speed": 0.5})

    assert answer.status_code == 200 and answer.headers["content-type"] == "audio/wav"
    assert wav_of(answer.content) == (1, 24000, 240 * len(text))
    assert speech_requests(fake_openai)[0]["body"]["speed"] == 0.5
    record = UsageRecord.objects.get(request_id=answer.headers["x-tollgate-request-id"])
    assert (record.model, record.characters, record.cost) == ("openai/tts-1-hd", 11, 11 * Decimal("30.00") / MILLION)


def test_gpt_4o_mini_tts_takes_instructions_and_is_billed_the_tokens_it_reports(client, fake_openai, tenant):
    text = "Welcome aboard, everyone."
    instructions = "Speak warmly and slowly."
    raw = client.audio.speech.with_raw_response.create(model="openai/gpt-4o-mini-tts", voice="coral", input=text,
                                                       instructions=instructions, response_format="flac")

    assert raw.headers["content-type"] == "audio/flac"
    assert raw.content == audio_for(text, "flac")  # put together from the SSE pieces
    sent = speech_requests(fake_openai)[0]["body"]
    assert sent == {"model": "gpt-4o-mini-tts", "input": text, "response_format": "flac", "voice": "coral",
                    "instructions": instructions, "stream_format": "sse"}

    record = record_of(raw)
    input_tokens, output_tokens = 3 + 4, 2 * len(text)  # words of input and instructions; the fake's 2 a character
    assert (record.input_tokens, record.output_tokens, record.characters) == (input_tokens, output_tokens, 25)
    assert record.cost == (input_tokens * Decimal("0.60") + output_tokens * Decimal("12.00")) / MILLION
    assert not record.usage_estimated
    # Reserved: every byte of text a token, 3 audio tokens a character (the catalog's bound).
    assert record.reserved == ((len(text) + len(instructions)) * Decimal("0.60")
                               + 3 * len(text) * Decimal("12.00")) / MILLION


def test_token_priced_speech_without_reported_usage_is_billed_what_was_reserved(client, fake_openai, tenant):
    fake_openai.enqueue(SpeechReply(send_usage=False))
    text = "No usage here."
    raw = client.audio.speech.with_raw_response.create(model="openai/gpt-4o-mini-tts", voice="ash", input=text,
                                                       speed=0.25)

    assert raw.content == audio_for(text, "mp3")
    record = record_of(raw)
    # At a quarter of the speed, four times the audio tokens of the bound.
    assert (record.input_tokens, record.output_tokens) == (len(text), math.ceil(len(text) * 3 / 0.25))
    assert record.usage_estimated
    assert record.cost == record.reserved


def test_what_the_model_does_not_take_is_refused_before_any_call(client, fake_openai, tenant):
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="openai/tts-1", voice="ballad", input="hi")
    assert refused.value.body["param"] == "voice"
    assert ("voice 'ballad' is not available for 'openai/tts-1'; use one of: alloy, ash, coral, echo, fable, nova, "
            "onyx, sage, shimmer.") in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="openai/tts-1", voice="alloy", input="hi", response_format="ogg")
    assert "use one of: mp3, opus, aac, flac, wav, pcm" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="openai/tts-1", voice="alloy", input="hi", speed=4.5)
    assert "speed must be between 0.25 and 4 for 'openai/tts-1', not 4.5" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="openai/tts-1", voice="alloy", input="hi", instructions="whisper it")
    assert "'openai/tts-1' takes no instructions" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="openai/tts-1", voice="alloy", input="x" * 4097)
    assert "input is 4097 characters; 'openai/tts-1' speaks at most 4096" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="openai/tts-1", voice="alloy", input="hi", stream_format="sse")
    assert refused.value.body["param"] == "stream_format"

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="openai/whisper-1", voice="alloy", input="hi")
    assert "'openai/whisper-1' is a transcription model; call it at /v1/audio/transcriptions" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="openai/tts-1", voice="alloy", input="hi", extra_body={"pitch": 2})
    assert "does not take 'pitch'" in refused.value.message

    assert speech_requests(fake_openai) == []
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_speech_not_on_the_plan_is_refused(sdk_for, tenant, other_tenant, other_client, fake_openai):
    tenant.subscription.plan = Plan.objects.get(slug="basic")
    tenant.subscription.save()
    basic = sdk_for(issue_api_key(tenant, name="basic key").raw)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        basic.audio.speech.create(model="openai/tts-1", voice="alloy", input="hello")
    assert refused.value.code == "capability_not_on_plan"
    assert "speech models are not on plan Basic" in refused.value.message
    assert speech_requests(fake_openai) == []
    # Charlie's plan is his own.
    assert other_client.audio.speech.create(model="openai/tts-1", voice="alloy", input="hello").content


def test_monthly_speech_characters_are_a_hard_limit(client, other_client, fake_openai, tenant, other_tenant):
    Plan.objects.filter(slug="pro").update(speech_characters_per_month=30)
    client.audio.speech.create(model="openai/tts-1", voice="alloy", input="twenty characters!!!")

    with pytest.raises(openai.RateLimitError) as refused:
        client.audio.speech.create(model="openai/tts-1", voice="alloy", input="another twenty chars")
    assert refused.value.code == "media_limit_exceeded"
    assert ("Monthly speech limit reached: plan Pro includes 30 characters of speech per month, 20 are used or in "
            "progress, and this request could use up to 20.") in refused.value.message
    assert len(speech_requests(fake_openai)) == 1

    client.audio.speech.create(model="openai/tts-1", voice="alloy", input="ten chars!")  # fits exactly
    assert MonthlySpend.objects.get(tenant=tenant).characters == 30
    other_client.audio.speech.create(model="openai/tts-1", voice="alloy", input="Charlie's own twenty")
    assert MonthlySpend.objects.get(tenant=other_tenant).characters == 20


def test_a_refused_call_costs_nothing_and_gives_the_characters_back(client, fake_openai, tenant):
    fake_openai.enqueue(SpeechReply(status=400, error_message="The input was refused."))
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="openai/tts-1", voice="alloy", input="this will fail")
    assert "The input was refused." in refused.value.message

    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the failed record")
    assert (record.outcome, record.characters, record.cost) == ("error", 0, 0)
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.characters, ledger.reserved, ledger.settled) == (0, 0, 0)


def test_gemini_tts_answers_wav_made_from_its_pcm(client, fake_gemini_audio, tenant, other_tenant):
    text = "Have a wonderful day!"
    raw = client.audio.speech.with_raw_response.create(model="gemini/gemini-2.5-flash-preview-tts", voice="Puck",
                                                       input=text, instructions="Say cheerfully")

    assert raw.headers["content-type"] == "audio/wav"
    spoken = f"Say cheerfully: {text}"
    assert wav_of(raw.content) == (1, 24000, 240 * len(spoken))
    sent = fake_gemini_audio.requests[0]
    assert sent["model"] == "gemini-2.5-flash-preview-tts" and sent["action"] == "generateContent"
    assert sent["body"] == {"contents": [{"role": "user", "parts": [{"text": spoken}]}], "generationConfig": {
        "responseModalities": ["AUDIO"], "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}}}}

    record = record_of(raw)
    prompt, audio = 6, math.ceil(len(spoken) / 100 * 25)  # words; 25 tokens a second of audio
    assert (record.input_tokens, record.output_tokens, record.characters) == (prompt, audio, len(text))
    assert record.cost == (prompt * Decimal("0.50") + audio * Decimal("10.00")) / MILLION
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_gemini_tts_speaks_raw_pcm_in_its_default_voice_and_refuses_mp3(client, api_key, fake_gemini_audio, tenant,
                                                                        gateway_url):
    pcm = httpx.post(f"{gateway_url}/v1/audio/speech", headers={"Authorization": f"Bearer {api_key}"},
                     json={"model": "gemini/gemini-2.5-pro-preview-tts", "input": "Hi.", "response_format": "pcm"})
    assert pcm.headers["content-type"] == "audio/pcm" and pcm.content == b"\x00\x00" * 720
    voice = fake_gemini_audio.requests[0]["body"]["generationConfig"]["speechConfig"]["voiceConfig"]
    assert voice == {"prebuiltVoiceConfig": {"voiceName": "Kore"}}  # the catalog's default_voice

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="gemini/gemini-2.5-pro-preview-tts", voice="Kore", input="Hi.",
                                   response_format="mp3")
    assert "use one of: wav, pcm" in refused.value.message
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="gemini/gemini-2.5-pro-preview-tts", voice="Kore", input="Hi.", speed=1.5)
    assert "takes no speed" in refused.value.message
    assert len(fake_gemini_audio.requests) == 1


def test_fal_speech_model_answers_its_wav(client, fake_fal, tenant):
    fake_fal.enqueue(FalReply(kind="audio", required=("prompt",)))
    raw = client.audio.speech.with_raw_response.create(model="fal/fal-ai/kokoro/american-english", voice="af_heart",
                                                       input="Hello from the queue.")

    assert raw.headers["content-type"] == "audio/wav"
    assert wav_of(raw.content)[2] > 0
    submitted = next(r for r in fake_fal.requests if r["method"] == "POST")
    assert submitted["body"] == {"prompt": "Hello from the queue.", "voice": "af_heart"}
    record = record_of(raw)
    assert (record.characters, record.cost) == (21, 21 * Decimal("20.00") / MILLION)
