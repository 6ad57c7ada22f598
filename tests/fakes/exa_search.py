"""A fake Exa search API over real HTTP on 127.0.0.1.

``POST /search`` with ``x-api-key: <key>`` and exa-py's camelCase body (``query`` required,
``numResults``, ``type``, ``contents.text.maxCharacters``, ``userLocation``). The answer is Exa's:
``requestId``, ``resolvedSearchType``, ``results`` (``id``, ``url``, ``title``, ``publishedDate``,
``author``, and ``text`` cut to maxCharacters when contents asked for it), ``costDollars``.
Errors are ``{"requestId", "error", "tag"}``: 401 ``INVALID_API_KEY`` for a bad key, 400
``INVALID_REQUEST_BODY`` for a missing query, others as scripted (402 ``NO_MORE_CREDITS``, 429, 5xx).
"""

import uuid
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.server import ScriptedServer
from tests.fakes.tavily_search import DEFAULT_HITS

API_KEY = "exa-fake-upstream"


@dataclass
class Reply:
    hits: list[tuple[str, str, str]] = field(default_factory=lambda: list(DEFAULT_HITS))  # (title, url, text)
    status: int = 200
    error: str = "Internal server error"
    tag: str = "INTERNAL_ERROR"
    headers: dict[str, str] = field(default_factory=dict)


class FakeExa(ScriptedServer):
    thread_name = "fake-exa"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/search", self.search)
        return app

    @staticmethod
    def error(status: int, message: str, tag: str, headers=None) -> web.Response:
        return web.json_response({"requestId": uuid.uuid4().hex, "error": message, "tag": tag}, status=status,
                                 headers=headers)

    async def search(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        if request.headers.get("x-api-key") != self.api_key:
            return self.error(401, "Invalid API key", "INVALID_API_KEY")
        if not isinstance(body.get("query"), str) or not body["query"]:
            return self.error(400, "query: Required", "INVALID_REQUEST_BODY")
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.error, reply.tag, reply.headers)
        text = (body.get("contents") or {}).get("text")
        limit = text.get("maxCharacters", 10_000) if isinstance(text, dict) else 10_000
        results = []
        for title, url, snippet in reply.hits[:body.get("numResults", 10)]:
            result = {"id": url, "url": url, "title": title, "publishedDate": None, "author": None}
            if text:
                result["text"] = snippet[:limit]
            results.append(result)
        return web.json_response({
            "requestId": uuid.uuid4().hex, "resolvedSearchType": "neural", "results": results,
            "costDollars": {"total": 0.005 + 0.001 * len(results), "search": {"neural": 0.005},
                            "contents": {"text": 0.001 * len(results)}},
        })
