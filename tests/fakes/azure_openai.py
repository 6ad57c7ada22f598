"""A fake Azure OpenAI resource over real HTTP on 127.0.0.1.

WIRE_FORMATS.md has no Azure section; these are the facts it follows (openai-python's
``lib/azure.py`` for the addressing, Microsoft's REST reference and content filtering pages for the
shapes):
- ``POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version={version}``: the
  deployment in the path, the version as a query parameter; the body is OpenAI's Chat Completions
  request (``model`` may be sent; Azure goes by the deployment).
- Auth: the ``api-key`` header, or ``Authorization: Bearer <Microsoft Entra ID token>``. Anything
  else is 401 ``{"error": {"code": "401", "message": "Access denied due to invalid subscription key
  or wrong API endpoint. ..."}}``.
- No ``api-version`` is 404 ``{"error": {"code": "404", "message": "Resource not found"}}``; one the
  resource does not know is 400 ``{"error": {"code": "BadRequest", "message": "API version not
  supported"}}``; an unknown deployment is 404 ``{"error": {"code": "DeploymentNotFound", ...}}``.
- The answer is OpenAI's completion plus ``prompt_filter_results: [{"prompt_index": 0,
  "content_filter_results": {...}}]`` and ``content_filter_results`` in each choice, each category
  (hate, self_harm, sexual, violence) as ``{"filtered": bool, "severity": "safe"|"low"|"medium"|"high"}``;
  ``model`` is the model's versioned name, not the deployment's.
- The stream is OpenAI's chunks (``data: ...`` lines, ``data: [DONE]``) after a first chunk with
  ``choices: []``, empty ``id``/``model``/``object`` and ``prompt_filter_results``; each choice chunk
  carries ``content_filter_results`` (``{}`` on the role chunk); the usage chunk (``choices: []``)
  comes only when ``stream_options.include_usage`` is set.
- A completion the output filter stops: finish_reason ``content_filter`` with the filtered category
  in ``content_filter_results``; not streamed, the message has no content.
- A prompt the input filter refuses: 400 ``{"error": {"message": "The response was filtered due to
  the prompt triggering Azure OpenAI's content management policy. ...", "type": null, "param":
  "prompt", "code": "content_filter", "status": 400, "innererror": {"code":
  "ResponsibleAIPolicyViolation", "content_filter_result": {category: {"filtered", "severity"}}}}}``.
- Tools and ``response_format`` (``json_schema`` needs ``json_schema.name`` and ``.schema``) as at OpenAI.
- Media: ``images/generations``, ``images/edits``, ``audio/speech``, ``audio/transcriptions`` and
  ``embeddings`` under the same deployment path, checked the same way, then answered as OpenAI's (the
  handlers of tests/fakes/openai_images.py, openai_audio.py and openai_embeddings.py: the deployment
  must be named after its model). An
  image prompt the filter refuses is 400 ``{"error": {"code": "content_policy_violation", "message",
  "type": "invalid_request_error", "inner_error": {"code": "ResponsibleAIPolicyViolation",
  "content_filter_results": {...}, "revised_prompt"}}}``.

Tests script it with ``enqueue(Reply(...))`` (media: the OpenAI fakes' ImageReply, SpeechReply,
TranscriptReply, or a Reply with ``prompt_filtered``); unscripted requests get the default reply.
Every request is kept (path, query, headers, body) in ``requests``.
"""

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes import openai_audio, openai_embeddings, openai_images
from tests.fakes.openai_upstream import count_prompt_tokens, split_words
from tests.fakes.server import ScriptedServer

API_KEY = "azure-fake-resource-key-1"
API_VERSIONS = {"2024-06-01", "2024-10-21", "2025-04-01-preview"}
DEFAULT_REPLY = "Hello from the fake Azure deployment."
# deployment name -> the model behind it, as the answer's ``model`` names it
DEPLOYMENTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06",
               "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14", "chat-prod": "gpt-4o-2024-11-20",
               "dall-e-3": "dall-e-3", "gpt-image-1": "gpt-image-1", "tts-1": "tts-1", "whisper-1": "whisper-1",
               "text-embedding-3-small": "text-embedding-3-small"}
CATEGORIES = ("hate", "self_harm", "sexual", "violence")
PROMPT_FILTERED = ("The response was filtered due to the prompt triggering Azure OpenAI's content management "
                   "policy. Please modify your prompt and retry. To learn more about our content filtering "
                   "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766")
ACCESS_DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                 "valid key for an active subscription and use a correct regional API endpoint for your resource.")


@dataclass
class Reply:
    text: str = DEFAULT_REPLY
    status: int = 200
    error_code: str | None = None
    error_message: str = "The fake Azure resource failed as scripted."
    headers: dict[str, str] = field(default_factory=dict)
    tool_call: tuple[str, str] | None = None  # (function name, JSON arguments)
    prompt_filtered: dict[str, str] | None = None  # {category: severity}: the input filter refuses (400)
    output_filtered: dict[str, str] | None = None  # {category: severity}: the output filter stops the answer
    words_before_filter: int = 2  # streamed words before the output filter stops it


def filter_results(flagged: dict[str, str] | None = None) -> dict:
    """Every category's verdict: safe, except those flagged (filtered at their severity)."""
    flagged = flagged or {}
    return {category: {"filtered": category in flagged, "severity": flagged.get(category, "safe")}
            for category in CATEGORIES}


class FakeAzureOpenAI(ScriptedServer):
    thread_name = "fake-azure-openai"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY, entra_token: str | None = None):
        super().__init__(api_key=api_key)
        self.entra_token = entra_token  # also accepted, as Authorization: Bearer <token>

    @property
    def endpoint(self) -> str:
        return self.address

    def app(self) -> web.Application:
        app = web.Application()
        deployment = "/openai/deployments/{deployment}"
        app.router.add_post(f"{deployment}/chat/completions", self.chat_completions)
        app.router.add_post(f"{deployment}/images/generations",
                            self.openai_route(openai_images.images, openai_images.ImageReply, route="generations"))
        app.router.add_post(f"{deployment}/images/edits",
                            self.openai_route(openai_images.images, openai_images.ImageReply, route="edits"))
        app.router.add_post(f"{deployment}/audio/speech", self.openai_route(openai_audio.speech,
                                                                            openai_audio.SpeechReply))
        app.router.add_post(f"{deployment}/audio/transcriptions",
                            self.openai_route(openai_audio.transcriptions, openai_audio.TranscriptReply))
        app.router.add_post(f"{deployment}/embeddings",
                            self.openai_route(openai_embeddings.embeddings, openai_embeddings.EmbeddingReply))
        return app

    def openai_route(self, handler, reply_kind: type, **kwargs):
        """One of the OpenAI fake's media handlers, behind Azure's checks and content filter."""
        async def handle(request: web.Request) -> web.StreamResponse:
            refused = self.refusal(request)
            scripted = self.script[0] if self.script else None
            if refused is None and isinstance(scripted, Reply) and scripted.prompt_filtered:
                self.script.popleft()
                refused = self.error(400, {
                    "code": "content_policy_violation", "type": "invalid_request_error",
                    "message": "Your request was rejected as a result of our safety system. Your prompt may contain "
                               "text that is not allowed by our safety system.",
                    "inner_error": {"code": "ResponsibleAIPolicyViolation", "revised_prompt": None,
                                    "content_filter_results": filter_results(scripted.prompt_filtered)}})
            if refused is not None:
                self.requests.append({"path": request.path, "query": dict(request.query),
                                      "headers": dict(request.headers)})
                return refused
            response = await handler(OpenAIMediaShim(self, reply_kind), request, **kwargs)
            self.requests[-1]["query"] = dict(request.query)
            return response
        return handle

    @staticmethod
    def error(status: int, error: dict) -> web.Response:
        return web.json_response({"error": error}, status=status,
                                 headers={"apim-request-id": str(uuid.uuid4()), "x-ms-region": "Sweden Central"})

    def refusal(self, request: web.Request) -> web.Response | None:
        """What Azure answers before looking at the body: auth, api-version, deployment."""
        key, authorization = request.headers.get("api-key"), request.headers.get("Authorization")
        if not (key == self.api_key or (self.entra_token and authorization == f"Bearer {self.entra_token}")):
            return self.error(401, {"code": "401", "message": ACCESS_DENIED})
        version = request.query.get("api-version")
        if version is None:
            return self.error(404, {"code": "404", "message": "Resource not found"})
        if version not in API_VERSIONS:
            return self.error(400, {"code": "BadRequest", "message": "API version not supported"})
        if request.match_info["deployment"] not in DEPLOYMENTS:
            return self.error(404, {"code": "DeploymentNotFound", "message": (
                "The API deployment for this resource does not exist. If you created the deployment within the last "
                "5 minutes, please wait a moment and try again.")})
        return None

    @staticmethod
    def invalid(body: dict) -> str | None:
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return "'messages' is a required property"
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            schema = response_format.get("json_schema") or {}
            if not schema.get("name") or not isinstance(schema.get("schema"), dict):
                return "Missing required parameter: 'response_format.json_schema.name'."
        if "stream_options" in body and not body.get("stream"):
            return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        return None

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"path": request.path, "query": dict(request.query), "headers": dict(request.headers),
                              "body": body})
        refused = self.refusal(request)
        if refused is not None:
            return refused
        problem = self.invalid(body)
        if problem:
            return self.error(400, {"message": problem, "type": "invalid_request_error", "param": None,
                                    "code": None})
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, {"message": reply.error_message, "type": None, "param": None,
                                             "code": reply.error_code or str(reply.status)})
        if reply.prompt_filtered:
            return self.error(400, {
                "message": PROMPT_FILTERED, "type": None, "param": "prompt", "code": "content_filter", "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation",
                               "content_filter_result": filter_results(reply.prompt_filtered)}})
        model = DEPLOYMENTS[request.match_info["deployment"]]
        words = split_words(reply.text)
        if reply.output_filtered:
            words = words[:reply.words_before_filter]
        prompt_tokens = count_prompt_tokens(body["messages"])
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                 "total_tokens": prompt_tokens + len(words),
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        if body.get("stream"):
            return await self.stream(request, body, reply, model, words, usage)
        message: dict = {"role": "assistant", "content": "".join(words), "refusal": None, "annotations": []}
        finish_reason = "stop"
        if reply.tool_call:
            name, arguments = reply.tool_call
            message["content"] = None
            message["tool_calls"] = [{"id": "call_az1", "type": "function",
                                      "function": {"name": name, "arguments": arguments}}]
            finish_reason = "tool_calls"
        if reply.output_filtered:
            message = {"role": "assistant", "refusal": None, "annotations": []}
            finish_reason = "content_filter"
        return web.json_response({
            "choices": [{"content_filter_results": filter_results(reply.output_filtered),
                         "finish_reason": finish_reason, "index": 0, "logprobs": None, "message": message}],
            "created": int(time.time()), "id": f"chatcmpl-{uuid.uuid4().hex[:29]}", "model": model,
            "object": "chat.completion",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filter_results()}],
            "system_fingerprint": "fp_azure", "usage": usage,
        }, headers={"apim-request-id": str(uuid.uuid4())})

    async def stream(self, request, body: dict, reply: Reply, model: str, words: list[str],
                     usage: dict) -> web.StreamResponse:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "apim-request-id": str(uuid.uuid4())})
        await response.prepare(request)
        head = {"created": int(time.time()), "id": f"chatcmpl-{uuid.uuid4().hex[:29]}", "model": model,
                "object": "chat.completion.chunk", "system_fingerprint": "fp_azure"}

        async def send(chunk: dict) -> None:
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        async def send_choice(delta: dict, finish_reason: str | None = None, results: dict | None = None) -> None:
            chunk = {**head, "choices": [{"content_filter_results": filter_results() if results is None else results,
                                          "delta": delta, "finish_reason": finish_reason, "index": 0,
                                          "logprobs": None}]}
            if include_usage:
                chunk["usage"] = None
            await send(chunk)

        await send({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filter_results()}]})
        await send_choice({"content": "", "refusal": None, "role": "assistant"}, results={})
        if reply.tool_call:
            name, arguments = reply.tool_call
            await send_choice({"tool_calls": [{"index": 0, "id": "call_az1", "type": "function",
                                               "function": {"name": name, "arguments": ""}}]}, results={})
            middle = len(arguments) // 2
            for fragment in (arguments[:middle], arguments[middle:]):
                await send_choice({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}, results={})
            await send_choice({}, "tool_calls", results={})
        else:
            for word in words:
                await send_choice({"content": word})
            if reply.output_filtered:
                await send_choice({}, "content_filter", results=filter_results(reply.output_filtered))
            else:
                await send_choice({}, "stop", results={})
        if include_usage:
            await send({**head, "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


class OpenAIMediaShim:
    """What the OpenAI fake's media handlers use of their fake, over the Azure one: its script and
    request log, OpenAI's error body; no Bearer check (Azure's api-key was checked before)."""

    api_key = None

    def __init__(self, fake: FakeAzureOpenAI, reply_kind: type):
        self.fake, self.reply_kind = fake, reply_kind
        self.requests = fake.requests
        self.base_url = fake.endpoint
        self.image_files: dict[str, bytes] = {}

    def next_reply(self):
        return self.fake.script.popleft() if self.fake.script else self.reply_kind()

    def _gate(self) -> asyncio.Event:
        raise AssertionError("held replies are not scripted on the Azure fake")

    @staticmethod
    def error(status: int, message: str, type_: str, code: str | None, headers=None) -> web.Response:
        return web.json_response({"error": {"message": message, "type": type_, "param": None, "code": code}},
                                 status=status, headers={"apim-request-id": str(uuid.uuid4()), **(headers or {})})
