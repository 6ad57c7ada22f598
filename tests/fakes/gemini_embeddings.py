"""A fake Gemini API embeddings upstream over real HTTP on 127.0.0.1.

What it follows (ai.google.dev/api/embeddings, the REST reference of models.batchEmbedContents,
EmbedContentRequest, ContentEmbedding and TaskType; the error body of WIRE_FORMATS.md section 4):
- ``POST /v1beta/models/{model}:batchEmbedContents`` with ``x-goog-api-key``; the body
  ``{"requests": [{"model": "models/{model}", "content": {"parts": [{"text"}]}, "taskType"?,
  "title"?, "outputDimensionality"?}]}``. Each request must name the model of the path
  (400 otherwise). taskType one of TASK_TYPES (400 otherwise).
- At most 100 requests in one batch: beyond, 400 ``* BatchEmbedContentsRequest.requests: at most
  100 requests can be in one batch`` (undocumented; the message as vercel/ai, weaviate and lancedb
  report it).
- The answer ``{"embeddings": [{"values": [float]}]}`` in the requests' order, and no usage.
  ``outputDimensionality`` truncates the vector; above the model's size is a 400.
- Errors ``{"error": {"code", "message", "status"}}``: 400 INVALID_ARGUMENT (an invalid key is 400
  INVALID_ARGUMENT with reason API_KEY_INVALID), 429 RESOURCE_EXHAUSTED, 500 INTERNAL, 503 UNAVAILABLE.
This fake's own choices: vectors are tests.fakes.openai_embeddings.fake_vector of the text (exact
in float32); gemini-embedding-001 makes 3,072 values, text-embedding-004 768.

Tests script it with ``enqueue(GeminiEmbedReply(...))``; unscripted requests get the default answer.
"""

from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.openai_embeddings import fake_vector
from tests.fakes.server import ScriptedServer

API_KEY = "gemini-fake-embeddings-key"
MAX_REQUESTS = 100
SIZES = {"gemini-embedding-001": 3072, "text-embedding-004": 768}
TASK_TYPES = {"TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
              "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"}
GRPC_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
               500: "INTERNAL", 503: "UNAVAILABLE"}


@dataclass
class GeminiEmbedReply:
    status: int = 200
    message: str = "The fake upstream failed as scripted."
    headers: dict[str, str] = field(default_factory=dict)
    drop_last: bool = False  # answer one embedding fewer than asked
    usage_tokens: int | None = None  # add usageMetadata.promptTokenCount (Gemini sends none)


def error(status: int, message: str, *, reason: str | None = None, headers: dict | None = None) -> web.Response:
    detail: dict = {"code": status, "message": message, "status": GRPC_STATUS.get(status, "UNKNOWN")}
    if reason:
        detail["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                              "domain": "googleapis.com"}]
    return web.json_response({"error": detail}, status=status, headers=headers)


def refusal(model: str, requests) -> str | None:
    if model not in SIZES:
        return f"models/{model} is not found for API version v1beta, or is not supported for embedContent."
    if not isinstance(requests, list) or not requests:
        return "* BatchEmbedContentsRequest.requests: requests is required"
    if len(requests) > MAX_REQUESTS:
        return f"* BatchEmbedContentsRequest.requests: at most {MAX_REQUESTS} requests can be in one batch\n"
    for index, entry in enumerate(requests):
        if entry.get("model") != f"models/{model}":
            return (f"* BatchEmbedContentsRequest.requests[{index}].model: the model of each request must match "
                    f"the model of the batch (models/{model})")
        parts = (entry.get("content") or {}).get("parts") or []
        if not parts or not all(isinstance(part.get("text"), str) and part["text"] for part in parts):
            return f"* BatchEmbedContentsRequest.requests[{index}].content: contents.parts must not be empty"
        if entry.get("taskType", "TASK_TYPE_UNSPECIFIED") not in TASK_TYPES:
            return f"Invalid value at 'requests[{index}].task_type' ({entry['taskType']})"
        size = entry.get("outputDimensionality")
        if size is not None and not 1 <= size <= SIZES[model]:
            return f"* requests[{index}].output_dimensionality: must be between 1 and {SIZES[model]}"
    return None


class FakeGeminiEmbeddings(ScriptedServer):
    thread_name = "fake-gemini-embeddings"
    reply_class = GeminiEmbedReply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1beta/models/{call}", self.call)
        return app

    def calls(self) -> list[dict]:
        return [request for request in self.requests if request["path"].endswith(":batchEmbedContents")]

    async def call(self, request: web.Request) -> web.Response:
        model, _, verb = request.match_info["call"].partition(":")
        body = await request.json()
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if request.headers.get("x-goog-api-key") != self.api_key:
            return error(400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID")
        if verb != "batchEmbedContents":
            return error(404, f"Method {verb} is not served by this fake.")
        reply = self.next_reply()
        if reply.status != 200:
            return error(reply.status, reply.message, headers=reply.headers)
        problem = refusal(model, body.get("requests"))
        if problem:
            return error(404 if problem.endswith("embedContent.") else 400, problem)
        embeddings = []
        for entry in body["requests"]:
            text = " ".join(part["text"] for part in entry["content"]["parts"])
            embeddings.append({"values": fake_vector(text, entry.get("outputDimensionality") or SIZES[model])})
        if reply.drop_last:
            embeddings.pop()
        answer: dict = {"embeddings": embeddings}
        if reply.usage_tokens is not None:
            answer["usageMetadata"] = {"promptTokenCount": reply.usage_tokens}
        return web.json_response(answer)
