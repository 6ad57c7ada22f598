"""The gateway speaks plain ASGI: a stream reaches the client whole whatever the server's ``send``
returns, a coroutine (uvicorn, Daphne) or another awaitable (granian's, done at once)."""

import asyncio
import json

from gateway.asgi import application
from providers.http import close_client
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord

WORDS = " ".join(f"word{n}" for n in range(30))


class DoneAwaitable:
    """What granian's send returns: an awaitable with nothing to wait for, not a coroutine."""

    def __await__(self):
        return iter(())


def served(api_key: str, body: dict, send_returns) -> list[dict]:
    """The ASGI messages the app sends for one POST /v1/chat/completions."""
    sent: list[dict] = []

    def send(message):
        sent.append(message)
        return send_returns()

    async def run():
        pending = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
        hung_up = asyncio.Event()

        async def receive():
            if pending:
                return pending.pop()
            await hung_up.wait()  # the client stays
            return {"type": "http.disconnect"}

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                             (b"authorization", f"Bearer {api_key}".encode())]}
        try:
            await application(scope, receive, send)
        finally:
            await close_client()  # this loop's pool to the providers, as the lifespan's shutdown does
    asyncio.run(run())
    return sent


def streamed_text(sent: list[dict]) -> tuple[str, list[str]]:
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert all(message["type"] == "http.response.body" for message in sent[1:])
    assert not sent[-1].get("more_body") and all(message.get("more_body") for message in sent[1:-1])
    body = b"".join(message.get("body", b"") for message in sent[1:]).decode()
    events = [line[len("data: "):] for line in body.splitlines() if line.startswith("data: ")]
    chunks = [json.loads(event) for event in events if event != "[DONE]"]
    return "".join(choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]), events


def test_a_stream_is_whole_when_send_returns_an_awaitable_that_is_not_a_coroutine(api_key, tenant, fake_openai):
    fake_openai.enqueue(Reply(text=WORDS))
    body = {"model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "talk"}]}
    text, events = streamed_text(served(api_key, body, DoneAwaitable))
    assert text == WORDS and events[-1] == "[DONE]"
    record = wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")
    assert (record.ending, record.http_status) == ("completed", 200)


def test_a_stream_is_whole_when_send_is_a_coroutine(api_key, tenant, fake_openai):
    async def nothing():
        return None

    fake_openai.enqueue(Reply(text=WORDS))
    body = {"model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "talk"}]}
    text, events = streamed_text(served(api_key, body, nothing))
    assert text == WORDS and events[-1] == "[DONE]"
