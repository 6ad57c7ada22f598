"""ModelScope API-Inference: the adapter against a fake of its async task API over real HTTP
(tasks submitted with the async header, polled with the task-type header, errors mapped), then its
text-to-image models through /v1/images/generations with the official openai SDK, billed exactly and
kept from other_tenant; chat stays OpenAI-compatible."""

from decimal import Decimal

import httpx
import openai
import pytest

from providers import errors
from providers.adapters.modelscope import ModelScopeAdapter
from providers.media_types import ImageRequest
from providers.models import Model
from providers.registry import get_adapter
from providers.types import Target
from tests.conftest import adapter_target, serve_queue_provider, wait_for
from tests.conftest import run_adapter_call as run
from tests.fakes import media_samples
from tests.fakes.modelscope_api import API_KEY, FakeModelScope, Reply
from usage.models import UsageRecord

ADAPTER = ModelScopeAdapter()


@pytest.fixture(scope="session")
def modelscope_server():
    fake = FakeModelScope().start()
    yield fake
    fake.stop()


@pytest.fixture
def modelscope(modelscope_server):
    modelscope_server.reset()
    return modelscope_server


@pytest.fixture
def fake_modelscope(catalog, modelscope):
    serve_queue_provider("modelscope", modelscope)
    return modelscope


def target_for(fake: FakeModelScope, model: str = "Qwen/Qwen-Image", *, key: str = API_KEY, total_timeout: float = 10.0) -> Target:
    return adapter_target("modelscope", fake, model, key=key, total_timeout=total_timeout)


def test_registry_serves_modelscope_chat_and_images():
    adapter = get_adapter("modelscope")
    assert isinstance(adapter, ModelScopeAdapter)
    assert all(adapter.supports(op) for op in ("complete", "stream", "generate_images"))
    assert not adapter.supports("edit_images") and not adapter.supports("submit_video")


def test_a_task_is_submitted_async_and_polled_with_its_task_type(modelscope):
    request = ImageRequest(model="m", prompt="A golden cat", size="1328x1328", seed=12345, steps=30,
                           guidance_scale=4.0, negative_prompt="blurry", extra={"loras": "some/lora"})
    result = run(ADAPTER.generate_images(request, target_for(modelscope)))
    submit, *looks = modelscope.requests
    assert submit["path"] == "/v1/images/generations"
    assert submit["headers"]["X-ModelScope-Async-Mode"] == "true"
    assert submit["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert submit["body"] == {"model": "Qwen/Qwen-Image", "prompt": "A golden cat", "negative_prompt": "blurry",
                              "size": "1328x1328", "seed": 12345, "steps": 30, "guidance": 4.0, "loras": "some/lora"}
    [task] = modelscope.tasks.values()
    assert [look["path"] for look in looks] == [f"/v1/tasks/{task.id}"] * 3
    assert all(look["headers"]["X-ModelScope-Task-Type"] == "image_generation" for look in looks)
    assert (result.usage.images, result.usage.media_detail) == (1, "1328x1328")
    assert media_samples.png_size(run(ADAPTER.fetch_media(result.images[0], target_for(modelscope)))) == (1328, 1328)


def test_n_images_are_n_tasks_waited_for_together(modelscope):
    result = run(ADAPTER.generate_images(ImageRequest(model="m", prompt="a fox", n=3, size="512x512"),
                                         target_for(modelscope, "black-forest-labs/FLUX.1-dev")))
    assert len(modelscope.tasks) == 3 and result.usage.images == 3


def test_a_failed_task_says_why(modelscope):
    modelscope.enqueue(Reply(states=("RUNNING", "FAILED"),
                             failure={"code": "DataInspectionFailed", "message": "Input data may contain inappropriate content."}))
    with pytest.raises(errors.ContentFiltered, match="inappropriate"):
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="x"), target_for(modelscope)))


def test_a_task_that_never_ends_times_out(modelscope):
    modelscope.enqueue(Reply(states=("PENDING",)))
    with pytest.raises(errors.ProviderTimeout):
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="x"), target_for(modelscope, total_timeout=0.3)))


@pytest.mark.parametrize(("status", "error"), [(404, errors.ProviderNotFound), (429, errors.ProviderRateLimited),
                                               (400, errors.ProviderBadRequest), (503, errors.ProviderUnavailable)])
def test_submit_errors_are_mapped(modelscope, status, error):
    modelscope.enqueue(Reply(status=status, message="scripted"))
    with pytest.raises(error, match="API-Inference" if status == 404 else "scripted"):
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="x"), target_for(modelscope)))


def test_a_refused_token_is_the_operators_problem_and_never_quoted(modelscope):
    with pytest.raises(errors.ProviderAuthFailed) as raised:
        run(ADAPTER.generate_images(ImageRequest(model="m", prompt="x"), target_for(modelscope, key="ms-wrong")))
    assert "ms-wrong" not in raised.value.message


def test_qwen_image_through_the_sdk(client, other_client, fake_modelscope, tenant, other_tenant):
    answer = client.images.generate(model="modelscope/Qwen/Qwen-Image", prompt="a tea house in the rain",
                                    size="1664x928", n=2, extra_body={"seed": 3, "steps": 20})
    assert len(answer.data) == 2
    bodies = [r["body"] for r in fake_modelscope.requests if r["method"] == "POST"]
    assert bodies == [{"model": "Qwen/Qwen-Image", "prompt": "a tea house in the rain", "size": "1664x928",
                       "seed": 3, "steps": 20}] * 2
    image = httpx.get(answer.data[1].url)
    assert media_samples.png_size(image.content) == (1664, 928)
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.model, record.provider, record.images, record.cost) == ("modelscope/Qwen/Qwen-Image",
                                                                           "modelscope", 2, Decimal(0))
    media_id = answer.data[0].url.split("/media/")[1].split("/")[0]
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{media_id}", cast_to=object)
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_any_modelscope_model_the_operator_enables_is_served(client, fake_modelscope, tenant):
    from providers import router
    from providers.models import Provider

    Model.objects.create(public_id="modelscope/MAILAND/majicflus_v1", upstream_name="MAILAND/majicflus_v1",
                         provider=Provider.objects.get(slug="modelscope"), capability="image", group="small",
                         price_per_image=Decimal("0.002"), media_options={"sizes": ["1024x1024"], "max_n": 1})
    router.forget_catalog()
    client.images.generate(model="modelscope/MAILAND/majicflus_v1", prompt="a mysterious girl")
    [body] = [r["body"] for r in fake_modelscope.requests if r["method"] == "POST"]
    assert body == {"model": "MAILAND/majicflus_v1", "prompt": "a mysterious girl", "size": "1024x1024"}
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert record.cost == Decimal("0.002")


def test_a_failed_modelscope_task_costs_nothing(client, fake_modelscope, tenant):
    fake_modelscope.enqueue(Reply(states=("FAILED",), failure={"code": "DataInspectionFailed",
                                                             "message": "Output may contain inappropriate content."}))
    with pytest.raises(openai.BadRequestError, match="inappropriate"):
        client.images.generate(model="modelscope/black-forest-labs/FLUX.1-dev", prompt="x")
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.images, record.cost) == (0, 0)


def test_chat_on_modelscope_still_speaks_openais_shape(fake_openai):
    from providers.types import ChatRequest, Message
    from tests.fakes.openai_upstream import API_KEY as OPENAI_KEY

    target = Target(provider="modelscope", upstream_model="Qwen/Qwen3-32B", base_url=fake_openai.base_url,
                    api_key=OPENAI_KEY)
    result = run(ADAPTER.complete(ChatRequest(model="m", messages=[Message(role="user", content="hi")]), target))
    assert result.content and result.usage.output_tokens > 0
