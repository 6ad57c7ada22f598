"""No input gets a 5xx: every /v1 JSON endpoint is sent bodies generated from its own shape and
then mutated (a value swapped for any JSON, a key dropped, an unknown key added, the body cut,
nested deep, sent with another Content-Type), in-process through Django's AsyncClient. Every
answer must be a status below 500 with the OpenAI (or Anthropic) error envelope on refusal."""

import asyncio
import json

from django.test import AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Plan
from gateway import api_keys
from providers.http import close_client

PROMPT = [{"role": "user", "content": "hello there"}]
BASES = {
    "/v1/chat/completions": {"model": "demo/echo", "messages": PROMPT, "max_tokens": 16, "temperature": 0,
                             "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
                             "reasoning_effort": "low", "stream": False},
    "/v1/completions": {"model": "demo/echo", "prompt": ["hello there"], "max_tokens": 16, "temperature": 0,
                        "stop": ["\n"], "echo": False, "best_of": 1, "stream": False},
    "/v1/messages": {"model": "demo/echo", "max_tokens": 16, "system": "be brief",
                     "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                     "thinking": {"type": "enabled", "budget_tokens": 1024}, "stream": False},
    "/v1/messages/count_tokens": {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"model": "demo/echo", "input": [{"role": "user", "content": [{"type": "input_text",
                                                                                 "text": "hi"}]}],
                      "reasoning": {"effort": "low"}, "tools": [{"type": "function", "name": "f", "parameters": {}}],
                      "store": False, "stream": False},
    "/v1/images/generations": {"model": "openai/dall-e-3", "prompt": "a cat", "n": 1, "size": "1024x1024",
                               "response_format": "b64_json"},
    "/v1/audio/speech": {"model": "openai/tts-1", "input": "hello", "voice": "alloy", "response_format": "mp3"},
    "/v1/videos": {"model": "openai/sora-2", "prompt": "a cat", "seconds": "4"},
}

# Any JSON value, with the awkward ones made likely: lone surrogates, huge and non-finite-looking
# numbers, empty containers, types where strings go.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.sampled_from(["\ud800", "a\udfffb", "", " ", "demo/echo", "user", "function", "web_search", "low", "url"]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=8)


def paths_of(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths_of(item, (*prefix, index))


def replaced(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(copy[path[0]], path[1:], new)
    return copy


def dropped(value, path):
    copy = dict(value) if isinstance(value, dict) else list(value)
    if len(path) == 1:
        del copy[path[0]]
    else:
        copy[path[0]] = dropped(copy[path[0]], path[1:])
    return copy


@st.composite
def mutated_bodies(draw):
    endpoint = draw(st.sampled_from(sorted(BASES)))
    body = BASES[endpoint]
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        path = draw(st.sampled_from(list(paths_of(body))[1:]))
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if action == "replace":
            body = replaced(body, path, draw(json_values))
        elif action == "drop":
            body = dropped(body, path)
        else:
            body = {**body, draw(st.text(min_size=1, max_size=12)): draw(json_values)}
    raw = json.dumps(body).encode()
    shape = draw(st.sampled_from(["json", "json", "json", "cut", "deep", "duplicate", "text/plain"]))
    content_type = "application/json"
    if shape == "cut":
        raw = raw[: draw(st.integers(min_value=0, max_value=len(raw)))]
    elif shape == "deep":
        depth = draw(st.integers(min_value=60, max_value=3000))
        raw = raw[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
    elif shape == "duplicate":
        raw = raw[:-1] + b', "model": "demo/echo"}'
    elif shape == "text/plain":
        content_type = "text/plain"
    return endpoint, raw, content_type


def test_no_mutated_body_gets_a_5xx(api_key, tenant, fake_openai):
    Plan.objects.update(requests_per_minute=1_000_000)
    api_keys.forget_keys()
    seen: dict[int, int] = {}

    async def send(endpoint: str, raw: bytes, content_type: str):
        response = await AsyncClient().post(endpoint, raw, content_type=content_type,
                                            headers={"Authorization": f"Bearer {api_key}"})
        if response.streaming:
            async for _ in response.streaming_content:
                pass
        return response

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutated_bodies())
    def check(case):
        endpoint, raw, content_type = case
        response = loop.run_until_complete(send(endpoint, raw, content_type))
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (endpoint, raw[:300], response.content[:300])
        if response.status_code >= 400:
            error = json.loads(response.content)["error"]
            assert error["message"], (endpoint, raw[:300])

    loop = asyncio.new_event_loop()  # one loop for every example: the upstream client lives on it
    try:
        check()
    finally:
        loop.run_until_complete(close_client())
        loop.close()
    assert seen.get(400, 0) > 50 and sum(count for status, count in seen.items() if status < 300) > 10, seen
