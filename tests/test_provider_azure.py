"""A tenant reaches Azure OpenAI deployments through the gateway with the official openai SDK; the
fake Azure resource checks the deployment path, the api-version and the api-key header exactly, as
Azure does. Operators add deployments in the admin by endpoint, deployment name and api-version."""

import json
from decimal import Decimal

import openai
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from media.models import MediaFile
from providers import router
from providers.catalog_seed import add_azure_deployment, read_catalog, seed_catalog
from providers.models import Credential, Deployment, Model, Provider
from tests.conftest import serve_provider_from, wait_for
from tests.fakes.azure_openai import API_KEY, DEFAULT_REPLY, FakeAzureOpenAI, Reply
from tests.fakes.media_samples import wav
from tests.fakes.openai_audio import DEFAULT_TRANSCRIPT
from usage.models import UsageRecord

MODEL = "azure/gpt-4o-mini"
ENTRA_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-entra-token"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


@pytest.fixture(scope="module")
def azure_server():
    fake = FakeAzureOpenAI(entra_token=ENTRA_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def azure(catalog, azure_server):
    """The catalog's `azure` provider pointed at the fake resource, with its key."""
    azure_server.reset()
    serve_provider_from("azure", azure_server.endpoint, API_KEY)
    return azure_server


def set_quirks(**quirks) -> None:
    provider = Provider.objects.get(slug="azure")
    provider.quirks = {**provider.quirks, **quirks}
    provider.save(update_fields=["quirks"])
    router.forget_catalog()


def ask(client, **kwargs):
    kwargs.setdefault("messages", [{"role": "user", "content": "Say hello"}])
    return client.chat.completions.create(model=kwargs.pop("model", MODEL), **kwargs)


def test_chat_goes_to_the_deployment_with_api_version_and_api_key(client, azure):
    completion = ask(client, max_tokens=50, temperature=0.2)
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == MODEL
    sent = azure.requests[-1]
    assert sent["path"] == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert sent["query"] == {"api-version": "2024-10-21"}
    assert sent["headers"]["api-key"] == API_KEY
    assert "Authorization" not in sent["headers"]
    assert sent["body"] == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}],
                            "max_completion_tokens": 50, "temperature": 0.2}


def test_stream_skips_the_filter_chunk_and_ends_with_usage(client, azure):
    azure.enqueue(Reply(text="one two three four"))
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])
    assert all(c.model == MODEL for c in chunks)
    sent = azure.requests[-1]
    assert sent["body"]["stream"] is True and sent["body"]["stream_options"] == {"include_usage": True}
    assert sent["query"] == {"api-version": "2024-10-21"}


def test_tool_calls_come_back_streamed_and_not(client, azure):
    azure.enqueue(Reply(tool_call=("get_weather", '{"city": "Paris"}')),
                  Reply(tool_call=("get_weather", '{"city": "Oslo"}')))
    completion = ask(client, messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, tool_choice="auto")
    call = completion.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("call_az1", "get_weather",
                                                                                    {"city": "Paris"})
    assert completion.choices[0].finish_reason == "tool_calls"
    assert azure.requests[-1]["body"]["tools"] == TOOLS

    chunks = list(ask(client, messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, stream=True))
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
    assert calls[0].function.name == "get_weather" and calls[0].id == "call_az1"
    assert json.loads("".join(call.function.arguments or "" for call in calls)) == {"city": "Oslo"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_json_schema_output_reaches_the_deployment_as_sent(client, azure):
    azure.enqueue(Reply(text='{"name": "Ada", "age": 36}'))
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}
    completion = ask(client, messages=[{"role": "user", "content": "Who wrote the first program?"}],
                     response_format=response_format)
    assert json.loads(completion.choices[0].message.content) == {"name": "Ada", "age": 36}
    assert azure.requests[-1]["body"]["response_format"] == response_format


def test_prompt_refused_by_the_content_filter_names_the_categories(client, azure, tenant, other_tenant):
    azure.enqueue(Reply(prompt_filtered={"hate": "high", "violence": "medium"}),
                  Reply(prompt_filtered={"self_harm": "medium"}))
    with pytest.raises(openai.BadRequestError) as refused:
        ask(client)
    assert refused.value.code == "content_filter"
    assert refused.value.body["message"] == ("azure refused the request under its content filter (hate (high), violence "
                                     "(medium)). Change the prompt and try again.")
    with pytest.raises(openai.BadRequestError) as streamed:
        list(ask(client, stream=True))
    assert streamed.value.code == "content_filter" and "self_harm (medium)" in streamed.value.message
    assert len(azure.requests) == 2  # not retried: the same prompt would be refused again
    records = wait_for(lambda: list(UsageRecord.objects.filter(tenant=tenant)) if
                       UsageRecord.objects.filter(tenant=tenant).count() == 2 else None, what="two records")
    assert {(r.outcome, r.http_status, r.cost) for r in records} == {("error", 400, Decimal("0"))}
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_answer_stopped_by_the_output_filter_finishes_with_content_filter(client, azure, tenant, other_tenant):
    azure.enqueue(Reply(text="one two three four", output_filtered={"sexual": "medium"}),
                  Reply(text="one two three four", output_filtered={"violence": "high"}, words_before_filter=2))
    completion = ask(client)
    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content is None
    chunks = list(ask(client, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
    records = wait_for(lambda: list(UsageRecord.objects.filter(tenant=tenant).order_by("pk")) if
                       UsageRecord.objects.filter(tenant=tenant).count() == 2 else None, what="two records")
    assert [(r.outcome, r.output_tokens) for r in records] == [("ok", 2), ("ok", 2)]  # what was produced is billed
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_usage_record_has_the_exact_cost_at_the_catalog_price(client, azure, tenant, other_tenant):
    completion = ask(client)
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 6)
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.model, record.provider, record.upstream_model) == (MODEL, "azure", "gpt-4o-mini-2024-07-18")
    assert (record.input_tokens, record.output_tokens, record.outcome) == (5, 6, "ok")
    assert record.cost == Decimal("0.0000043500")  # 5 x 0.15 + 6 x 0.60, per million
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_streamed_usage_is_billed_from_the_usage_chunk(client, azure, tenant, other_tenant):
    azure.enqueue(Reply(text="alpha beta gamma"))
    list(ask(client, model="azure/gpt-4o", stream=True))
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.streamed, record.input_tokens, record.output_tokens) == (True, 5, 3)
    assert record.cost == Decimal("0.0000425000")  # 5 x 2.50 + 3 x 10.00, per million
    assert not record.usage_estimated
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_unsupported_api_version_is_a_502_that_says_what_to_fix(client, azure, settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    set_quirks(api_version="2023-01-01")
    with pytest.raises(openai.APIStatusError) as failed:
        ask(client)
    assert failed.value.status_code == 502
    assert failed.value.body["message"] == (
        "azure answered HTTP 400 (API version not supported) for deployment 'gpt-4o-mini' at api-version "
        "2023-01-01; an operator must fix the provider's endpoint or its api_version quirk.")
    assert azure.requests[-1]["query"] == {"api-version": "2023-01-01"}


def test_a_deployment_can_have_its_own_api_version(client, azure):
    set_quirks(api_versions={"gpt-4o": "2025-04-01-preview"})
    ask(client, model="azure/gpt-4o")
    ask(client)
    assert [(r["path"], r["query"]["api-version"]) for r in azure.requests] == [
        ("/openai/deployments/gpt-4o/chat/completions", "2025-04-01-preview"),
        ("/openai/deployments/gpt-4o-mini/chat/completions", "2024-10-21")]


def test_unknown_deployment_is_a_502_naming_it(client, azure, settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    Model.objects.filter(public_id=MODEL).update(upstream_name="gpt-4o-mini-typo")
    router.forget_catalog()
    with pytest.raises(openai.APIStatusError) as failed:
        ask(client)
    assert failed.value.status_code == 502
    assert "no deployment 'gpt-4o-mini-typo'" in failed.value.message
    assert azure.requests[-1]["path"] == "/openai/deployments/gpt-4o-mini-typo/chat/completions"


def test_refused_key_is_the_operators_problem_and_never_quoted(client, azure):
    Credential.objects.filter(provider__slug="azure").update(enabled=False)
    credential = Credential(provider=Provider.objects.get(slug="azure"), label="stale")
    credential.set_secret("azure-stale-key-0000")
    credential.save()
    router.forget_catalog()
    with pytest.raises(openai.APIStatusError) as failed:
        ask(client)
    assert failed.value.status_code == 502 and failed.value.code == "upstream_auth_failed"
    assert "stale" not in failed.value.message and "Access denied" not in failed.value.message
    assert azure.requests[-1]["headers"]["api-key"] == "azure-stale-key-0000"


@pytest.mark.parametrize("how", ["credential", "quirk"])
def test_entra_id_token_is_sent_as_a_bearer_instead_of_the_key(client, azure, how):
    Credential.objects.filter(provider__slug="azure").update(enabled=False)
    credential = Credential(provider=Provider.objects.get(slug="azure"), label="entra")
    credential.set_secret(f"Bearer {ENTRA_TOKEN}" if how == "credential" else ENTRA_TOKEN)
    credential.save()
    if how == "quirk":
        set_quirks(auth="bearer")
    router.forget_catalog()
    assert ask(client).choices[0].message.content == DEFAULT_REPLY
    headers = azure.requests[-1]["headers"]
    assert headers["Authorization"] == f"Bearer {ENTRA_TOKEN}" and "api-key" not in headers


def test_azure_is_enabled_only_with_both_its_key_and_endpoint(transactional_db, azure_server):
    catalog = read_catalog()
    notes = seed_catalog(catalog, {"AZURE_OPENAI_API_KEY": API_KEY})
    provider = Provider.objects.get(slug="azure")
    assert not provider.enabled and provider.wire_format == "azure_openai"
    assert "azure: AZURE_OPENAI_API_KEY is set but the provider has no base URL; set AZURE_OPENAI_ENDPOINT too" in notes
    seed_catalog(catalog, {"AZURE_OPENAI_ENDPOINT": azure_server.endpoint})
    assert not Provider.objects.get(slug="azure").enabled  # an endpoint without a key is not enough
    seed_catalog(catalog, {"AZURE_OPENAI_API_KEY": API_KEY, "AZURE_OPENAI_ENDPOINT": azure_server.endpoint})
    provider = Provider.objects.get(slug="azure")
    assert provider.enabled and provider.base_url == azure_server.endpoint
    assert provider.quirks == {"api_version": "2024-10-21"}
    assert provider.credentials.get(label="env").get_secret() == API_KEY
    assert set(provider.models.values_list("public_id", flat=True)) == {
        "azure/gpt-4o-mini", "azure/gpt-4o", "azure/gpt-4.1-mini"}


# --- the admin ---------------------------------------------------------------------------------

@pytest.fixture
def operator(catalog):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-tests-only")
    browser = Client()
    browser.force_login(user)
    return browser


ADD_AZURE = "admin:providers_model_add_azure"


def test_operator_adds_an_azure_deployment_that_tenants_call(operator, azure_server, client, tenant, other_tenant):
    azure_server.reset()
    changelist = operator.get(reverse("admin:providers_model_changelist")).content.decode()
    assert reverse(ADD_AZURE) in changelist and "Add Azure OpenAI deployment" in changelist
    page = operator.get(reverse(ADD_AZURE)).content.decode()
    assert "The deployment&#x27;s name in Azure AI Foundry" in page and "2024-10-21" in page
    response = operator.post(reverse(ADD_AZURE), {
        "endpoint": f"{azure_server.endpoint}/openai/", "deployment": "chat-prod", "api_version": "2025-04-01-preview",
        "api_key": API_KEY, "priced_like": Model.objects.get(public_id="openai/gpt-4o").pk})
    model = Model.objects.get(public_id="azure/chat-prod")
    assert response.status_code == 302 and response.url == reverse("admin:providers_model_change", args=[model.pk])
    provider = model.provider
    assert (provider.slug, provider.enabled, provider.base_url) == ("azure", True, azure_server.endpoint)
    assert provider.quirks == {"api_version": "2025-04-01-preview"}
    assert (model.upstream_name, model.group, model.input_price, model.output_price) == (
        "chat-prod", "frontier", Decimal("2.5"), Decimal("10"))

    completion = client.chat.completions.create(model="azure/chat-prod", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == DEFAULT_REPLY
    sent = azure_server.requests[-1]
    assert sent["path"] == "/openai/deployments/chat-prod/chat/completions"
    assert sent["query"] == {"api-version": "2025-04-01-preview"} and sent["headers"]["api-key"] == API_KEY
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.cost == Decimal("0.0000700000")  # 4 x 2.50 + 6 x 10.00, per million
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
    page = operator.get(reverse("admin:providers_provider_change", args=[provider.pk])).content.decode()
    assert "https://YOUR-RESOURCE.openai.azure.com" in page and "api_versions" in page


def test_operator_adds_azure_as_one_more_deployment_of_a_model(operator, azure, fake_openai, client):
    response = operator.post(reverse(ADD_AZURE), {
        "endpoint": azure.endpoint, "deployment": "gpt-4o-mini", "api_version": "2024-06-01",
        "serves": Model.objects.get(public_id="openai/gpt-4o-mini").pk})
    assert response.status_code == 302
    deployment = Deployment.objects.get(model__public_id="openai/gpt-4o-mini")
    assert (deployment.provider.slug, deployment.upstream_name, deployment.priority) == ("azure", "gpt-4o-mini", 0)
    # The resource keeps its api-version; this deployment is called with its own, with the stored key.
    assert deployment.provider.quirks == {"api_version": "2024-10-21", "api_versions": {"gpt-4o-mini": "2024-06-01"}}
    for _ in range(2):  # equal weights: one call each
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert len(fake_openai.requests) == 1 and len(azure.requests) == 1
    assert azure.requests[0]["query"] == {"api-version": "2024-06-01"}


def test_admin_form_refuses_an_unpriced_or_taken_deployment(operator, azure):
    unpriced = operator.post(reverse(ADD_AZURE), {"endpoint": azure.endpoint, "deployment": "free-lunch",
                                                  "api_version": "2024-10-21"})
    assert unpriced.status_code == 200
    assert "a deployment served at no price would be billed nothing" in unpriced.content.decode()
    taken = operator.post(reverse(ADD_AZURE), {"endpoint": azure.endpoint, "deployment": "gpt-4o",
                                               "api_version": "2024-10-21", "input_price": "1", "output_price": "2"})
    assert "&#x27;azure/gpt-4o&#x27; is taken" in taken.content.decode()
    keyless = operator.post(reverse(ADD_AZURE), {"endpoint": "https://other-resource.openai.azure.com",
                                                 "deployment": "gpt-4o", "public_id": "azure/other-gpt-4o",
                                                 "api_version": "2024-10-21", "input_price": "1", "output_price": "2"})
    assert "enter one of the resource&#x27;s keys" in keyless.content.decode()
    assert not Model.objects.filter(public_id__in=["azure/free-lunch", "azure/other-gpt-4o"]).exists()
    assert not Provider.objects.filter(slug__startswith="azure-other").exists()


# --- images and audio --------------------------------------------------------------------------

def add_media_deployment(azure, name: str, api_version: str = "2024-10-21") -> None:
    """What the admin form does for a deployment priced like OpenAI's model of the same name."""
    add_azure_deployment(endpoint=azure.endpoint, deployment=name, api_version=api_version,
                         priced_like=Model.objects.get(public_id=f"openai/{name}"))
    router.forget_catalog()


def record_of(raw) -> UsageRecord:
    return UsageRecord.objects.get(request_id=raw.headers["x-tollgate-request-id"])


def test_dall_e_3_deployment_draws_through_azure(client, other_client, azure, tenant, other_tenant):
    add_media_deployment(azure, "dall-e-3")
    raw = client.images.with_raw_response.generate(model="azure/dall-e-3", prompt="a lighthouse at dusk",
                                                   size="1024x1024", quality="hd")
    assert raw.parse().data[0].revised_prompt == "A revised prompt from the fake."
    sent = azure.requests[-1]
    assert sent["path"] == "/openai/deployments/dall-e-3/images/generations"
    assert sent["query"] == {"api-version": "2024-10-21"} and sent["headers"]["api-key"] == API_KEY
    assert "Authorization" not in sent["headers"]
    assert sent["body"] == {"model": "dall-e-3", "prompt": "a lighthouse at dusk", "n": 1, "size": "1024x1024",
                            "quality": "hd", "response_format": "b64_json"}
    record = record_of(raw)
    assert (record.tenant_id, record.model, record.provider) == (tenant.pk, "azure/dall-e-3", "azure")
    assert (record.images, record.media_detail, record.cost) == (1, "1024x1024/hd", Decimal("0.08"))
    stored = MediaFile.objects.get(tenant=tenant)
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{stored.id}", cast_to=object)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_image_prompt_refused_by_the_content_filter_names_the_categories(client, azure, tenant):
    add_media_deployment(azure, "dall-e-3")
    azure.enqueue(Reply(prompt_filtered={"violence": "high"}))
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="azure/dall-e-3", prompt="something violent")
    assert refused.value.code == "content_filter"
    assert "content filter (violence (high))" in refused.value.body["message"]
    assert not MediaFile.objects.filter(tenant=tenant).exists()


def test_whisper_deployment_transcribes_through_azure(client, azure, tenant, other_tenant):
    add_media_deployment(azure, "whisper-1", api_version="2024-06-01")
    raw = client.audio.transcriptions.with_raw_response.create(model="azure/whisper-1",
                                                               file=("hello.wav", wav(1.5), "audio/wav"))
    assert raw.parse().text == DEFAULT_TRANSCRIPT
    sent = azure.requests[-1]
    assert sent["path"] == "/openai/deployments/whisper-1/audio/transcriptions"
    # The resource's api-version was set by its first deployment (the catalog's); this one keeps its own.
    assert sent["query"] == {"api-version": "2024-06-01"} and sent["headers"]["api-key"] == API_KEY
    assert sent["body"]["response_format"] == "verbose_json"
    record = record_of(raw)
    assert (record.model, record.audio_seconds, record.cost) == ("azure/whisper-1", Decimal(2), Decimal("0.0002"))
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_tts_deployment_speaks_through_azure(client, azure, tenant, other_tenant):
    add_media_deployment(azure, "tts-1")
    raw = client.audio.speech.with_raw_response.create(model="azure/tts-1", voice="alloy", input="Hello there",
                                                       response_format="wav")
    assert raw.headers["content-type"] == "audio/wav" and raw.content[:4] == b"RIFF"
    sent = azure.requests[-1]
    assert (sent["path"], sent["query"]) == ("/openai/deployments/tts-1/audio/speech", {"api-version": "2024-10-21"})
    record = record_of(raw)
    assert (record.model, record.characters, record.cost) == ("azure/tts-1", 11, Decimal("0.000165"))
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_video_is_not_offered_on_azure():
    from providers.registry import get_adapter

    adapter = get_adapter("azure_openai")
    assert adapter.supports("generate_images") and adapter.supports("transcribe")
    assert not adapter.supports("submit_video")
