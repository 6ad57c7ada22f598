"""A fake Serper (Google search) API over real HTTP on 127.0.0.1.

``POST /search`` with ``X-API-KEY: <key>`` and ``{"q", "num", "gl", "hl"}``, as Serper's own
snippets send it. The answer is Serper's: ``searchParameters`` (the query echoed, ``type: search``,
``engine: google``), ``organic`` hits (``title``, ``link``, ``snippet``, ``position``) and ``credits``.
Errors are ``{"message": "...", "statusCode": N}``: a bad key is 403 ``Unauthorized.``, as Serper
answers it; 400 for a missing query; others as scripted.
"""

from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.server import ScriptedServer
from tests.fakes.tavily_search import DEFAULT_HITS

API_KEY = "serper-fake-upstream"


@dataclass
class Reply:
    hits: list[tuple[str, str, str]] = field(default_factory=lambda: list(DEFAULT_HITS))  # (title, url, snippet)
    status: int = 200
    error: str = "Internal Server Error"
    headers: dict[str, str] = field(default_factory=dict)


class FakeSerper(ScriptedServer):
    thread_name = "fake-serper"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/search", self.search)
        return app

    @staticmethod
    def error(status: int, message: str, headers=None) -> web.Response:
        return web.json_response({"message": message, "statusCode": status}, status=status, headers=headers)

    async def search(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        if request.headers.get("X-API-KEY") != self.api_key:
            return self.error(403, "Unauthorized.")
        if not isinstance(body.get("q"), str) or not body["q"]:
            return self.error(400, "Query param q is required.")
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.error, reply.headers)
        num = body.get("num", 10)
        parameters = {"q": body["q"], "type": "search", "engine": "google",
                      **{key: body[key] for key in ("gl", "hl", "num") if key in body}}
        organic = [{"title": title, "link": url, "snippet": text, "position": n}
                   for n, (title, url, text) in enumerate(reply.hits[:num], start=1)]
        return web.json_response({"searchParameters": parameters, "organic": organic,
                                  "relatedSearches": [{"query": f"{body['q']} news"}], "credits": 1})
