"""A fake Google Gemini API (Developer API) over real HTTP on 127.0.0.1.

It speaks ../shared/providers/WIRE_FORMATS.md section 5:
- ``POST /v1beta/models/{model}:generateContent`` -> one GenerateContentResponse;
  ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` -> ``data: {GenerateContentResponse}``
  lines (with the space, as python-genai requires), no ``[DONE]``: the stream ends when the
  connection closes; without ``alt=sse`` one JSON array of the same responses.
- ``x-goog-api-key`` (or ``?key=``); a wrong key is the documented quirk, 400 INVALID_ARGUMENT with
  reason API_KEY_INVALID. Error bodies are ``{"error": {"code", "message", "status", "details"}}``
  (GRPC_CODES: each status's HTTP code); an error refusing a request comes with that HTTP status, on
  the stream call too. One inside a 200 stream (after some chunks) arrives as bare pretty-printed JSON
  lines, which is what python-genai reads, or framed as one ``data:`` line.
- camelCase everywhere. Like the real API it refuses what Gemini would: unknown fields, roles other
  than user/model, an empty ``contents``, lower-case or JSON-Schema-only keys in a function's Schema.

Tests script answers with ``enqueue(Reply(...))``: plain text, or explicit ``parts`` built with
``text_part``/``thought_part``/``call_part`` (with or without Gemini's call ``id``)/``image_part``.
Every request is recorded (model, action, query, headers, body). Streams send text parts word by word, other parts whole, the finishReason
and the complete usageMetadata on the last chunk (earlier chunks carry a partial one).
"""

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import ScriptedServer

DEFAULT_REPLY = "Hello from the fake Gemini."
API_KEY = "AIza-fake-gemini-key"
GRPC_CODES = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
              "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429, "INTERNAL": 500, "UNAVAILABLE": 503,
              "DEADLINE_EXCEEDED": 504}
IMAGE_TOKENS = 1290  # what Gemini bills per generated 1024px image
TOP_LEVEL = {"contents", "systemInstruction", "tools", "toolConfig", "safetySettings", "cachedContent",
             "generationConfig", "serviceTier"}
GENERATION_CONFIG = {"maxOutputTokens", "temperature", "topP", "topK", "candidateCount", "stopSequences",
                     "responseMimeType", "responseSchema", "responseJsonSchema", "thinkingConfig",
                     "responseModalities", "imageConfig", "seed", "presencePenalty", "frequencyPenalty",
                     "responseLogprobs", "logprobs", "speechConfig", "mediaResolution"}
THINKING_CONFIG = {"thinkingBudget", "includeThoughts", "thinkingLevel"}
PART_KEYS = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "thought", "thoughtSignature",
             "executableCode", "codeExecutionResult", "videoMetadata"}
SCHEMA_TYPES = {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
SCHEMA_FIELDS = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
                 "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
                 "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"}


def text_part(text: str, *, signature: str | None = None) -> dict:
    return {"text": text, **({"thoughtSignature": signature} if signature else {})}


def thought_part(text: str) -> dict:
    return {"text": text, "thought": True}


def call_part(name: str, args: dict, *, id: str | None = None, signature: str | None = None) -> dict:
    """A functionCall part; ``id`` is optional on the wire (WIRE_FORMATS 5: ``functionCall {id?, name, args}``)."""
    call = {**({"id": id} if id else {}), "name": name, "args": args}
    return {"functionCall": call, **({"thoughtSignature": signature} if signature else {})}


def image_part(data: str, mime: str = "image/png", *, signature: str | None = None) -> dict:
    return {"inlineData": {"mimeType": mime, "data": data}, **({"thoughtSignature": signature} if signature else {})}


@dataclass
class Reply:
    text: str = DEFAULT_REPLY
    parts: list[dict] | None = None  # the answer's parts as Gemini sends them (instead of text)
    finish_reason: str = "STOP"
    finish_message: str | None = None  # candidate.finishMessage (Gemini explains e.g. a malformed call)
    block_reason: str | None = None  # answer promptFeedback.blockReason and no candidates
    usage: dict | None = None  # override usageMetadata
    status: int = 200
    error_status: str = "INTERNAL"
    error_message: str = "The fake upstream failed as scripted."
    error_details: list[dict] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    stream_error_after: int | None = None  # send this many chunks, then an error object
    stream_error_framing: str = "bare"  # the error as bare pretty-printed JSON lines, or "data" (one data: line)
    cut_after: int | None = None  # send this many chunks, then drop the connection
    raw_body: str | None = None  # generateContent: 200 with exactly this text as its JSON body
    raw_event: str | None = None  # a stream: this SSE text (e.g. "data: [1,2,3]") before a chunk
    raw_event_after: int = 1  # ... after this many chunks; the stream then goes on as scripted

    def answer_parts(self) -> list[dict]:
        return list(self.parts) if self.parts is not None else [text_part(self.text)]


class InvalidRequest(Exception):
    pass


def count_words(text: str) -> int:
    return len(text.split())


def prompt_tokens(body: dict) -> int:
    parts = [part for content in body.get("contents", []) for part in content.get("parts", [])]
    parts += (body.get("systemInstruction") or {}).get("parts", [])
    return sum(count_words(part.get("text", "")) + (258 if "inlineData" in part or "fileData" in part else 0)
               for part in parts) + 2 * len(body.get("contents", []))


def usage_for(body: dict, parts: list[dict]) -> dict:
    prompt = prompt_tokens(body)
    thoughts = sum(count_words(p.get("text", "")) for p in parts if p.get("thought"))
    candidates = sum(count_words(p.get("text", "")) for p in parts if "text" in p and not p.get("thought"))
    candidates += 10 * sum(1 for p in parts if "functionCall" in p) + IMAGE_TOKENS * sum(1 for p in parts
                                                                                       if "inlineData" in p)
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": candidates,
             "totalTokenCount": prompt + candidates + thoughts,
             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def logprobs_result(body: dict, tokens: list[str]) -> dict | None:
    """``logprobsResult`` when asked (generationConfig.responseLogprobs; ``logprobs`` top candidates
    per step): each token chosen with logProbability -0.5 per position."""
    config = body.get("generationConfig") or {}
    if not config.get("responseLogprobs") or not tokens:
        return None
    chosen = [{"token": token, "tokenId": index, "logProbability": -0.5 * (index + 1)}
              for index, token in enumerate(tokens)]
    top = config.get("logprobs") or 0
    return {"chosenCandidates": chosen, "topCandidates": [
        {"candidates": [step] + [{"token": f" alt{n}", "tokenId": 1000 + n,
                                  "logProbability": step["logProbability"] - n} for n in range(1, top)]}
        for step in chosen]}


def answer_tokens(parts: list[dict]) -> list[str]:
    """The answer's text as the stream splits it (a word with its leading space a token)."""
    tokens: list[str] = []
    for part in parts:
        if "text" in part and not part.get("thought"):
            words = part["text"].split(" ")
            tokens += [word if index == 0 else " " + word for index, word in enumerate(words)]
    return tokens


def piece_candidate(body: dict, piece: dict) -> dict:
    """A stream chunk's candidate: one part, with the logprobs of its tokens when asked."""
    candidate = {"content": {"role": "model", "parts": [piece]}, "index": 0}
    if logprobs := logprobs_result(body, [piece["text"]] if "text" in piece and not piece.get("thought") else []):
        candidate["logprobsResult"] = logprobs
    return candidate


def check_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise InvalidRequest(f"Invalid value at '{where}': expected a Schema object.")
    for key, value in schema.items():
        if key not in SCHEMA_FIELDS:
            raise InvalidRequest(f'Invalid JSON payload received. Unknown name "{key}" at \'{where}\': '
                                 f"Cannot find field.")
        if key == "type" and value not in SCHEMA_TYPES:
            raise InvalidRequest(f"Invalid value at '{where}.type' (type.googleapis.com/google.ai.generativelanguage"
                                 f".v1beta.Type), \"{value}\"")
    for name, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{where}.properties[{name}]")
    if "items" in schema:
        check_schema(schema["items"], f"{where}.items")
    for index, sub in enumerate(schema.get("anyOf") or ()):
        check_schema(sub, f"{where}.anyOf[{index}]")


def check_body(body: Any) -> None:
    """Refuse what the real API refuses, with its style of message."""
    if not isinstance(body, dict):
        raise InvalidRequest("Invalid JSON payload received.")
    for key in body:
        if key not in TOP_LEVEL:
            raise InvalidRequest(f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.')
    contents = body.get("contents")
    if not contents:
        raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified")
    for index, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            raise InvalidRequest(f"Please use a valid role: user, model. (contents[{index}])")
        if not content.get("parts"):
            raise InvalidRequest(f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty.")
        for part in content["parts"]:
            unknown = set(part) - PART_KEYS
            if unknown:
                raise InvalidRequest(f'Invalid JSON payload received. Unknown name "{unknown.pop()}" at '
                                     f"'contents[{index}].parts[0]': Cannot find field.")
    config = body.get("generationConfig") or {}
    for key in config:
        if key not in GENERATION_CONFIG:
            raise InvalidRequest(f'Invalid JSON payload received. Unknown name "{key}" at \'generation_config\': '
                                 f"Cannot find field.")
    for key in config.get("thinkingConfig") or {}:
        if key not in THINKING_CONFIG:
            raise InvalidRequest(f'Invalid JSON payload received. Unknown name "{key}" at '
                                 f"'generation_config.thinking_config': Cannot find field.")
    if "responseSchema" in config and "responseJsonSchema" in config:
        raise InvalidRequest("responseSchema and responseJsonSchema cannot both be set.")
    for tool in body.get("tools") or ():
        for index, function in enumerate(tool.get("functionDeclarations") or ()):
            if not function.get("name"):
                raise InvalidRequest(f"* GenerateContentRequest.tools[0].function_declarations[{index}].name: "
                                     f"Name cannot be empty.")
            if "parameters" in function:
                check_schema(function["parameters"], f"tools[0].function_declarations[{index}].parameters")
    check_function_ids(contents)


def check_function_ids(contents: list[dict]) -> None:
    """A functionResponse's id must name a functionCall id sent before it (an assumption: stricter
    than anything verified, so a gateway that pairs the ids wrongly fails loudly)."""
    call_ids: set[str] = set()
    for index, content in enumerate(contents):
        for part in content["parts"]:
            if "id" in (part.get("functionCall") or {}):
                call_ids.add(part["functionCall"]["id"])
            response_id = (part.get("functionResponse") or {}).get("id")
            if response_id is not None and response_id not in call_ids:
                raise InvalidRequest(f"* GenerateContentRequest.contents[{index}]: function response id "
                                     f"'{response_id}' does not match any function call id.")


class FakeGemini(ScriptedServer):
    thread_name = "fake-gemini"
    reply_class = Reply

    def __init__(self, *, api_key: str = API_KEY):
        super().__init__(api_key=api_key)

    @property
    def base_url(self) -> str:
        return self.address

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1beta/models/{model_action}", self.models)
        return app

    @staticmethod
    def error(status: int, grpc_status: str, message: str, details=(), headers=None) -> web.Response:
        body = {"error": {"code": status, "message": message, "status": grpc_status}}
        if details:
            body["error"]["details"] = list(details)
        return web.json_response(body, status=status, headers=headers)

    def key_refused(self, request: web.Request) -> web.Response | None:
        """None for our key (header or ``?key=``); else the documented quirk, 400 INVALID_ARGUMENT
        with reason API_KEY_INVALID."""
        if (request.headers.get("x-goog-api-key") or request.query.get("key")) == self.api_key:
            return None
        return self.error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])

    async def models(self, request: web.Request) -> web.StreamResponse:
        model, _, action = request.match_info["model_action"].rpartition(":")
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append({"model": model, "action": action, "query": dict(request.query),
                              "headers": dict(request.headers), "body": body})
        if action not in ("generateContent", "streamGenerateContent"):
            return self.error(404, "NOT_FOUND", f"Method not found: {action}.")
        if refused := self.key_refused(request):
            return refused
        try:
            check_body(body)
        except InvalidRequest as exc:
            return self.error(400, "INVALID_ARGUMENT", str(exc))
        reply = self.next_reply()
        if reply.status != 200:
            return self.error(reply.status, reply.error_status, reply.error_message, reply.error_details,
                              reply.headers)
        head = {"modelVersion": model, "responseId": uuid.uuid4().hex[:20]}
        if action == "generateContent" and reply.raw_body is not None:
            return web.Response(text=reply.raw_body, content_type="application/json")
        if action == "generateContent":
            return web.json_response({**self.answer(body, reply), **head})
        chunks = [{**chunk, **head} for chunk in self.chunks(body, reply)]
        if request.query.get("alt") != "sse":
            return web.json_response(chunks)
        return await self.stream(request, reply, chunks)

    def answer(self, body: dict, reply: Reply) -> dict:
        parts = reply.answer_parts()
        usage = reply.usage or usage_for(body, parts)
        if reply.block_reason:
            return {"promptFeedback": {"blockReason": reply.block_reason, "safetyRatings": []},
                    "usageMetadata": {"promptTokenCount": usage["promptTokenCount"],
                                      "totalTokenCount": usage["promptTokenCount"]}}
        candidate: dict[str, Any] = {"finishReason": reply.finish_reason, "index": 0}
        if reply.finish_message:
            candidate["finishMessage"] = reply.finish_message
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        if logprobs := logprobs_result(body, answer_tokens(parts)):
            candidate["logprobsResult"] = logprobs
        return {"candidates": [candidate], "usageMetadata": usage}

    def chunks(self, body: dict, reply: Reply) -> list[dict]:
        answer = self.answer(body, reply)
        if reply.block_reason:
            return [answer]
        pieces: list[dict] = []
        for part in reply.answer_parts():
            if "text" not in part:
                pieces.append(part)
                continue
            words = part["text"].split(" ")
            for index, word in enumerate(words):
                piece = {"text": word if index == 0 else " " + word, **({"thought": True} if part.get("thought") else {})}
                if index == len(words) - 1 and part.get("thoughtSignature"):
                    piece["thoughtSignature"] = part["thoughtSignature"]
                pieces.append(piece)
        partial_usage = {"promptTokenCount": answer["usageMetadata"]["promptTokenCount"],
                         "totalTokenCount": answer["usageMetadata"]["promptTokenCount"]}
        chunks = [{"candidates": [piece_candidate(body, piece)], "usageMetadata": partial_usage} for piece in pieces]
        if not chunks:
            chunks = [{"candidates": [{"index": 0}]}]
        chunks[-1]["candidates"][0]["finishReason"] = reply.finish_reason
        if reply.finish_message:
            chunks[-1]["candidates"][0]["finishMessage"] = reply.finish_message
        chunks[-1]["usageMetadata"] = answer["usageMetadata"]
        return chunks

    async def stream(self, request: web.Request, reply: Reply, chunks: list[dict]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for index, chunk in enumerate(chunks):
                if reply.stream_error_after is not None and index == reply.stream_error_after:
                    code = GRPC_CODES.get(reply.error_status, 500)
                    error = {"error": {"code": code, "message": reply.error_message, "status": reply.error_status}}
                    if reply.stream_error_framing == "data":
                        await response.write(b"data: " + json.dumps(error).encode() + b"\n\n")
                    else:
                        await response.write(json.dumps(error, indent=2).encode() + b"\n")
                    break
                if reply.cut_after is not None and index == reply.cut_after:
                    request.transport.close()
                    return response
                if reply.raw_event is not None and index == reply.raw_event_after:
                    await response.write(reply.raw_event.encode() + b"\n\n")
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

