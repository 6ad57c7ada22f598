"""Stored responses: get, list, input items, delete, delete all, retention and purge, each for
its own tenant only; and a stored conversation continued by a second gateway process."""

import io
import os
import subprocess
import sys
import time
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing.models import Plan
from conversations.models import StoredResponse
from tests.conftest import free_port
from tests.fakes.openai_upstream import DEFAULT_REPLY
from usage.models import UsageRecord

GPT = "openai/gpt-4o-mini"


def ask(client, text: str, **kwargs):
    return client.responses.create(model=GPT, input=text, **kwargs)


def api(gateway_url: str, key: str, method: str, path: str, **params) -> httpx.Response:
    return httpx.request(method, f"{gateway_url}/v1/{path}", params=params, headers={"Authorization": f"Bearer {key}"})


def test_a_stored_response_is_read_back_and_its_input_items_listed(client, other_client, fake_openai):
    first = ask(client, "My name is Ada.", instructions="Be brief.")
    second = client.responses.create(model=GPT, previous_response_id=first.id, input=[
        {"role": "user", "content": [{"type": "input_text", "text": "And yours?"}]}])
    again = client.responses.retrieve(second.id)
    assert again.model_dump() == second.model_dump()
    # Everything the second response answered: the first turn's input and output, then its own input.
    items = client.responses.input_items.list(second.id, order="asc")
    assert [(item.type, getattr(item, "role", None)) for item in items.data] == [
        ("message", "user"), ("message", "assistant"), ("message", "user")]
    assert items.data[1].id == first.output[0].id and items.data[1].content[0].text == DEFAULT_REPLY
    assert items.data[2].content[0].text == "And yours?"
    newest_first = client.responses.input_items.list(second.id, limit=2)
    assert [item.id for item in newest_first.data] == [items.data[2].id, items.data[1].id]
    assert newest_first.has_more
    assert [item.id for item in newest_first.get_next_page().data] == [items.data[0].id]
    for outsider in (lambda: other_client.responses.retrieve(second.id),
                     lambda: other_client.responses.input_items.list(second.id)):
        with pytest.raises(openai.NotFoundError):
            outsider()


def test_responses_are_listed_newest_first_a_page_at_a_time(client, other_client, gateway_url, api_key,
                                                            other_api_key, fake_openai):
    ids = [ask(client, f"question {n}").id for n in range(3)]
    ask(other_client, "not yours")
    page = api(gateway_url, api_key, "GET", "responses", limit=2).json()
    assert [r["id"] for r in page["data"]] == ids[:0:-1] and page["has_more"] is True
    assert page["first_id"] == ids[2] and page["last_id"] == ids[1]
    rest = api(gateway_url, api_key, "GET", "responses", limit=2, after=page["last_id"]).json()
    assert [r["id"] for r in rest["data"]] == [ids[0]] and rest["has_more"] is False
    oldest = api(gateway_url, api_key, "GET", "responses", order="asc").json()
    assert [r["id"] for r in oldest["data"]] == ids
    assert api(gateway_url, api_key, "GET", "responses", model="openai/*").json()["data"][0]["id"] == ids[2]
    assert api(gateway_url, api_key, "GET", "responses", model="anthropic/*").json()["data"] == []
    theirs = api(gateway_url, other_api_key, "GET", "responses").json()["data"]
    assert len(theirs) == 1 and theirs[0]["id"] not in ids
    refused = api(gateway_url, other_api_key, "GET", "responses", after=ids[0])
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "after"
    assert api(gateway_url, api_key, "GET", "responses", limit=0).status_code == 400


def test_deleting_one_response_and_then_all(client, other_client, gateway_url, api_key, other_api_key,
                                            fake_openai, tenant):
    first, second = ask(client, "one"), ask(client, "two")
    kept = ask(other_client, "theirs")
    with pytest.raises(openai.NotFoundError):
        other_client.responses.delete(first.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(first.id)
    # A later turn keeps its whole context: continuing it still works.
    third = client.responses.create(model=GPT, input="three", previous_response_id=second.id)
    assert fake_openai.requests[-1]["body"]["messages"][0] == {"role": "user", "content": "two"}
    deleted = api(gateway_url, api_key, "DELETE", "responses/all")
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 2
    for response_id in (second.id, third.id):
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(response_id)
    assert other_client.responses.retrieve(kept.id).id == kept.id
    assert UsageRecord.objects.filter(tenant=tenant).count() == 3  # the history of what was spent stays


def test_responses_expire_with_the_plan_retention_and_are_purged(client, other_client, fake_openai, tenant):
    Plan.objects.filter(slug="pro").update(response_retention_days=7)
    fresh = ask(client, "fresh")
    stored = StoredResponse.objects.get(id=fresh.id)
    assert stored.expires_at - stored.created_at == timedelta(days=7)
    old = ask(client, "old")
    StoredResponse.objects.filter(id=old.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    theirs = ask(other_client, "theirs, old too")
    StoredResponse.objects.filter(id=theirs.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(openai.NotFoundError):  # expired is gone for the API before the purge runs
        client.responses.retrieve(old.id)
    out = io.StringIO()
    call_command("purge_responses", stdout=out)
    assert "deleted 2 expired" in out.getvalue()
    assert list(StoredResponse.objects.values_list("id", flat=True)) == [fresh.id]
    assert client.responses.retrieve(fresh.id).output_text == DEFAULT_REPLY


def test_store_false_leaves_nothing_behind_but_the_usage_record(client, fake_openai, tenant, other_tenant):
    response = ask(client, "forget me", store=False)
    assert response.output_text == DEFAULT_REPLY and response.store is False
    assert not StoredResponse.objects.exists()
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


@pytest.fixture
def second_gateway(catalog):
    """Another gateway process on the same database: no memory shared with the first."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(), "SECRET_KEY": settings.SECRET_KEY,
           "API_KEY_PEPPER": settings.API_KEY_PEPPER, "CREDENTIALS_KEY": settings.CREDENTIALS_KEY}
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "gateway.asgi:application", "--host", "127.0.0.1",
                                "--port", str(port), "--log-level", "warning"], cwd=settings.BASE_DIR, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/v1/models", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the second gateway did not start: {process.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)
    process.stderr.close()


def database_url() -> str:
    """The test database, as the second process's DATABASE_URL."""
    name = connection.settings_dict["NAME"]
    if "DATABASE_URL" not in os.environ:
        return f"sqlite:///{name}"
    return urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl()


def test_a_conversation_continues_on_a_second_gateway_process(client, api_key, other_api_key, fake_openai,
                                                               second_gateway, tenant):
    first = ask(client, "My name is Ada.")
    with openai.OpenAI(base_url=f"{second_gateway}/v1", api_key=api_key, max_retries=0) as elsewhere:
        assert elsewhere.responses.retrieve(first.id).output_text == DEFAULT_REPLY
        second = elsewhere.responses.create(model=GPT, input="What is my name?", previous_response_id=first.id)
    assert fake_openai.requests[-1]["body"]["messages"] == [
        {"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": DEFAULT_REPLY},
        {"role": "user", "content": "What is my name?"}]
    assert client.responses.retrieve(second.id).previous_response_id == first.id
    with openai.OpenAI(base_url=f"{second_gateway}/v1", api_key=other_api_key, max_retries=0) as outsider:
        with pytest.raises(openai.NotFoundError):
            outsider.responses.retrieve(first.id)
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2
