"""Who a request was for: the OpenAI ``user`` and ``metadata`` fields (and x-tollgate-user /
x-tollgate-tags for clients that cannot set them) land on the request's usage record, from chat,
Responses, Anthropic's Messages and embeddings alike; malformed tags are a 400."""

import anthropic
import pytest

from usage.models import UsageRecord

HELLO = [{"role": "user", "content": "hello"}]


def test_chat_user_and_metadata_are_recorded(client, fake_openai, tenant):
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO, user="user-42",
                                   metadata={"team": "search", "env": "prod"})
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.end_user, record.tags) == ("user-42", {"team": "search", "env": "prod"})
    assert "metadata" not in fake_openai.requests[-1]["body"]  # recorded, never sent on


def test_headers_attribute_when_the_body_cannot(sdk_for, api_key, fake_openai, tenant):
    client = sdk_for(api_key).with_options(default_headers={"x-tollgate-user": "alice",
                                                            "x-tollgate-tags": "team=search, env=dev"})
    list(client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO, stream=True))
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.end_user, record.tags) == ("alice", {"team": "search", "env": "dev"})


def test_the_body_wins_over_the_headers(sdk_for, api_key, fake_openai, tenant):
    client = sdk_for(api_key).with_options(default_headers={"x-tollgate-user": "alice",
                                                            "x-tollgate-tags": "team=search"})
    client.responses.create(model="openai/gpt-4o-mini", input="hello", user="bob", metadata={"team": "ads"})
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.end_user, record.tags) == ("bob", {"team": "ads"})


def test_anthropic_metadata_user_id_and_embeddings_user(gateway_url, api_key, client, fake_openai, tenant):
    claude = anthropic.Anthropic(base_url=gateway_url, api_key=api_key, max_retries=0)
    claude.messages.create(model="openai/gpt-4o-mini", max_tokens=50, messages=HELLO,
                           metadata={"user_id": "claude-user"})
    client.embeddings.create(model="openai/text-embedding-3-small", input="alpha", user="embedder")
    assert set(UsageRecord.objects.filter(tenant=tenant).values_list("end_user", flat=True)) == {
        "claude-user", "embedder"}


@pytest.mark.parametrize("tags", ["no-equals-sign", ",".join(f"k{n}=v" for n in range(17)), "k=" + "v" * 513])
def test_malformed_tags_are_a_400_before_any_call(http, fake_openai, tenant, tags):
    answer = http.post("/chat/completions", json={"model": "openai/gpt-4o-mini", "messages": HELLO},
                       headers={"x-tollgate-tags": tags})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "x-tollgate-tags"
    assert not fake_openai.requests


@pytest.mark.parametrize("path, body, param", [
    ("/chat/completions", {"model": "openai/gpt-4o-mini", "messages": HELLO, "user": "bob\u0000x"}, "user"),
    ("/chat/completions", {"model": "openai/gpt-4o-mini", "messages": HELLO, "metadata": {"team": "a\u0000b"}},
     "metadata"),
    ("/embeddings", {"model": "openai/text-embedding-3-small", "input": "alpha", "user": "bob\u0000x"}, "user"),
    ("/completions", {"model": "openai/gpt-4o-mini", "prompt": "hi", "user": "\u0000"}, "user"),
])
def test_a_nul_in_who_a_request_was_for_is_a_400_before_any_call(http, fake_openai, tenant, path, body, param):
    # No stored user or tag can hold one (PostgreSQL text cannot): the request would go unrecorded, unbilled.
    answer = http.post(path, json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param and "NUL" in answer.json()["error"]["message"]
    assert not fake_openai.requests and not UsageRecord.objects.filter(tenant=tenant).exists()


def test_header_tags_and_metadata_together_are_bounded(http, fake_openai, tenant):
    answer = http.post("/chat/completions", headers={"x-tollgate-tags": ",".join(f"h{n}=v" for n in range(10))},
                       json={"model": "openai/gpt-4o-mini", "messages": HELLO,
                             "metadata": {f"m{n}": "v" for n in range(10)}})
    assert answer.status_code == 400
    assert "20 tags together; at most 16" in answer.json()["error"]["message"]
    assert not fake_openai.requests
