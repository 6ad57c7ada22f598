"""Translation into English through POST /v1/audio/translations, called with the official SDK's
``audio.translations.create``: whisper-1 (the one model whose catalog row declares translations)
against the fake OpenAI Audio API, billed as a transcription by the seconds of audio."""

from decimal import Decimal

import httpx
import openai
import pytest

from providers import router
from providers.models import Model
from tests.conftest import wait_for
from tests.fakes.media_samples import wav
from tests.fakes.openai_audio import DEFAULT_TRANSLATION
from usage.models import MonthlySpend, UsageRecord

# The SDK marks translations deprecated (OpenAI announced whisper-1's shutdown); it still sends them.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
WHISPER_PER_MINUTE = Decimal("0.006")


def translation_requests(fake_openai) -> list[dict]:
    return [r for r in fake_openai.requests if r.get("path") == "/v1/audio/translations"]


def record_of(raw) -> UsageRecord:
    return wait_for(lambda: UsageRecord.objects.filter(request_id=raw.headers["x-tollgate-request-id"]).first(),
                    what="the usage record")


def test_whisper_translates_into_english_billed_by_the_seconds_heard(client, fake_openai, tenant, other_tenant,
                                                                   gateway_url):
    audio = wav(1.5)
    raw = client.audio.translations.with_raw_response.create(model="openai/whisper-1",
                                                             file=("bonjour.wav", audio, "audio/wav"),
                                                             prompt="Tollgate", temperature=0.2)
    answer = raw.parse()

    assert answer.text == DEFAULT_TRANSLATION
    [sent] = translation_requests(fake_openai)
    # Asked for verbose_json whatever the client wants: its duration is what the translation is billed by.
    assert sent["body"] == {"model": "whisper-1", "response_format": "verbose_json", "prompt": "Tollgate",
                            "temperature": "0.2"}
    assert [(f["field"], f["filename"], f["content"]) for f in sent["files"]] == [("file", "bonjour.wav", audio)]

    record = record_of(raw)
    assert (record.tenant_id, record.model, record.capability) == (tenant.pk, "openai/whisper-1", "transcription")
    # Translations report no usage: billed the 1.5 s verbose_json says it heard, reserved in whole seconds.
    assert record.audio_seconds == Decimal("1.5")
    assert record.cost == Decimal("1.5") * WHISPER_PER_MINUTE / 60
    assert record.reserved == 2 * WHISPER_PER_MINUTE / 60
    assert MonthlySpend.objects.get(tenant=tenant).settled == record.cost
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
    assert not MonthlySpend.objects.filter(tenant=other_tenant, settled__gt=0).exists()


def test_a_translation_answers_text_srt_and_verbose_json(client, fake_openai, tenant):
    audio = ("two.wav", wav(2.0), "audio/wav")
    text = client.audio.translations.create(model="openai/whisper-1", file=audio, response_format="text")
    assert text == DEFAULT_TRANSLATION + "\n"

    srt = client.audio.translations.create(model="openai/whisper-1", file=audio, response_format="srt")
    assert srt == ("1\n00:00:00,000 --> 00:00:01,000\nGood morning from the fake translator.\n\n"
                   "2\n00:00:01,000 --> 00:00:02,000\nIt speaks English only.\n\n")

    verbose = client.audio.translations.create(model="openai/whisper-1", file=audio, response_format="verbose_json")
    assert (verbose.language, verbose.duration, verbose.text) == ("english", 2.0, DEFAULT_TRANSLATION)
    assert verbose.task == "translate"
    assert [(s.start, s.end) for s in verbose.segments] == [(0.0, 1.0), (1.0, 2.0)]
    assert {r["body"]["response_format"] for r in translation_requests(fake_openai)} == {"verbose_json"}

    records = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).count() == 3 and UsageRecord.objects.filter(
        tenant=tenant), what="three records")
    assert {(r.audio_seconds, r.cost) for r in records} == {(Decimal(2), 2 * WHISPER_PER_MINUTE / 60)}


def test_models_that_do_not_translate_are_refused_before_any_call(client, api_key, fake_openai, tenant, gateway_url):
    audio = ("a.wav", wav(1.0), "audio/wav")
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.translations.create(model="openai/gpt-4o-transcribe", file=audio)
    assert "'openai/gpt-4o-transcribe' does not translate audio" in refused.value.message
    assert refused.value.code == "unsupported_operation"

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.translations.create(model="openai/whisper-1", file=audio, extra_body={"language": "fr"})
    assert refused.value.body["param"] == "language"

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.translations.create(model="openai/whisper-1", file=audio, temperature=1.5)
    assert "temperature must be between 0 and 1, not 1.5" in refused.value.message

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.translations.create(model="openai/tts-1", file=audio)
    assert "'openai/tts-1' is a speech model" in refused.value.message

    headers = {"Authorization": f"Bearer {api_key}"}
    no_file = httpx.post(f"{gateway_url}/v1/audio/translations", headers=headers, data={"model": "openai/whisper-1"},
                         files={"other": ("x", b"x")})
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    assert "Send the audio to translate" in no_file.json()["error"]["message"]

    assert translation_requests(fake_openai) == []
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_a_declared_model_whose_adapter_cannot_translate_is_refused(client, fake_gemini_audio, fake_openai, tenant):
    # The catalog row alone is not enough: Gemini's adapter has no translate call.
    model = Model.objects.get(public_id="gemini/gemini-2.5-flash-transcribe")
    model.media_options = {**model.media_options, "translations": True}
    model.save()
    router.forget_catalog()
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.translations.create(model="gemini/gemini-2.5-flash-transcribe",
                                         file=("a.wav", wav(1.0), "audio/wav"))
    assert "does not serve translation here" in refused.value.message
    assert fake_gemini_audio.requests == [] and translation_requests(fake_openai) == []
    assert not UsageRecord.objects.filter(tenant=tenant).exists()
