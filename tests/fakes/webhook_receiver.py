"""A tenant's webhook endpoint over real HTTP on 127.0.0.1: keeps every POST as it arrived
(headers and raw body) and answers from a script of statuses (200 when the script is empty).
``/hook`` receives; ``/moved?to=<url>&status=<307|302>`` redirects. ``verify`` is the receiving
side's check, written as docs/REFERENCE.md ("Spend alerts") tells tenants to write it."""

import hashlib
import hmac
import time
from collections import deque

from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.server import ThreadedServer

TOLERANCE_SECONDS = 300


class WebhookReceiver(ThreadedServer):
    thread_name = "webhook-receiver"

    def __init__(self) -> None:
        super().__init__()
        self.statuses: deque[int] = deque()
        self.received: list[dict] = []

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            self.received.append({"headers": CIMultiDict(request.headers), "body": await request.read(),
                                  "method": request.method})
            return web.Response(status=self.statuses.popleft() if self.statuses else 200, text="ok")

        async def moved(request: web.Request) -> web.Response:
            return web.Response(status=int(request.query.get("status", "307")), headers={"Location": request.query["to"]})

        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_post("/moved", moved)
        return app

    def reset(self) -> None:
        self.statuses.clear()
        self.received.clear()


def verify(secret: str, headers, body: bytes, *, now: float | None = None) -> bool:
    """The receiver's check: the signature over "<timestamp>.<raw body>" matches, and the
    timestamp is recent (a replayed request is refused)."""
    timestamp = headers["Tollgate-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    signatures = [part.strip()[3:] for part in headers["Tollgate-Signature"].split(",")
                  if part.strip().startswith("v1=")]
    recent = abs((now if now is not None else time.time()) - int(timestamp)) <= TOLERANCE_SECONDS
    return recent and any(hmac.compare_digest(expected, signature) for signature in signatures)
