"""A fake Tavily Search API over real HTTP on 127.0.0.1.

``POST /search`` with ``Authorization: Bearer <key>`` and a JSON body (``query`` required, at most
400 characters; ``max_results`` 0-20), as tavily-python's TavilyClient sends it. The answer is
Tavily's: ``query``, ``follow_up_questions``, ``answer``, ``images``, ``results`` (``url``, ``title``,
``content``, ``score``, ``raw_content``), ``response_time``, ``request_id``. Errors are
``{"detail": {"error": "..."}}``: 401 for a bad key, 400 for a bad request, 429 and 432 (plan
limit) as scripted, 5xx as scripted.
"""

import uuid
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.server import ScriptedServer

API_KEY = "tvly-fake-upstream"
DEFAULT_HITS = [
    ("Paris - Wikipedia", "https://en.wikipedia.org/wiki/Paris", "Paris is the capital and largest city of France."),
    ("Paris | History, Map, Population", "https://www.britannica.com/place/Paris",
     "Paris, city and capital of France, situated in the north-central part of the country."),
    ("Visit Paris", "https://parisjetaime.com/eng", "The official website of the Paris tourist office."),
]


@dataclass
class Reply:
    hits: list[tuple[str, str, str]] = field(default_factory=lambda: list(DEFAULT_HITS))  # (title, url, text)
    status: int = 200
    error: str = "Internal server error"
    headers: dict[str, str] = field(default_factory=dict)


class FakeTavily(ScriptedServer):
    thread_name = "fake-tavily"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/search", self.search)
        return app

    @staticmethod
    def error(status: int, message: str, headers=None) -> web.Response:
        return web.json_response({"detail": {"error": message}}, status=status, headers=headers)

    async def search(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Unauthorized: missing or invalid API key.")
        query = body.get("query")
        if not isinstance(query, str) or not query:
            return self.error(400, "Query is missing.")
        if len(query) > 400:
            return self.error(400, "Query is too long. Max query length is 400 characters.")
        max_results = body.get("max_results", 5)
        if not isinstance(max_results, int) or not 0 <= max_results <= 20:
            return self.error(400, "max_results must be between 0 and 20.")
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.error, reply.headers)
        results = [{"url": url, "title": title, "content": text, "score": round(0.9 - 0.1 * n, 2),
                    "raw_content": None} for n, (title, url, text) in enumerate(reply.hits[:max_results])]
        return web.json_response({"query": query, "follow_up_questions": None, "answer": None, "images": [],
                                  "results": results, "response_time": 0.42, "request_id": str(uuid.uuid4())})
