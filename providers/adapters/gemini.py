"""Google Gemini API (Developer API) wire format: generateContent and its SSE stream.

    POST {base_url}/v1beta/models/{model}:generateContent              one JSON answer
    POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse   ``data: {...}`` lines, no [DONE]
    x-goog-api-key: <key>

Request (IR -> Gemini, camelCase as the REST API speaks it):
- system and developer messages, wherever they sit -> ``systemInstruction.parts``, in order.
- user -> a ``user`` content; assistant -> a ``model`` content (text, images, ``functionCall`` parts);
  tool -> a ``user`` content with a ``functionResponse`` part whose name is recovered from the
  earlier assistant tool call with that id. Consecutive contents of one role are merged, so
  parallel tool results arrive in the one turn Gemini expects.
- A ``data:`` image -> ``inlineData``; an http(s) image -> ``fileData {mimeType, fileUri}``, which
  the API fetches itself (public and signed URLs, announced Jan 2026); the MIME type is guessed from
  the URL's extension, image/jpeg when it has none.
- max tokens, temperature, top_p, stop, seed -> ``generationConfig``; ``json_object`` ->
  ``responseMimeType: application/json``; ``json_schema`` -> that plus ``responseJsonSchema``, the
  plain-JSON-Schema field, so the client's schema is sent unchanged.
- tools -> ``tools[0].functionDeclarations``; parameters converted to Gemini's OpenAPI-subset Schema
  (``to_gemini_schema``: upper-case types, local ``$ref`` inlined, ``["x", "null"]`` -> nullable,
  ``const`` -> enum; keywords it lacks, such as additionalProperties, are dropped: the declaration
  gets looser, never wrong). tool_choice auto/none/required/{function} -> AUTO/NONE/ANY/ANY+allowed.
- reasoning_effort -> ``thinkingConfig`` with ``includeThoughts`` (thought text comes back as
  reasoning): Gemini 3 models take ``thinkingLevel`` (none/minimal/low -> LOW, the rest -> HIGH, the
  two levels every Gemini 3 model accepts); older ones take ``thinkingBudget`` (THINKING_BUDGETS;
  "none" is 0, which 2.5 Pro refuses with its own 400 because it cannot stop thinking).
- Image models (upstream name contains "-image") get ``responseModalities: [TEXT, IMAGE]``.

Answer (Gemini -> IR):
- text parts -> content; ``thought: true`` parts -> reasoning (thought images are dropped);
  ``inlineData`` parts -> images as ``data:<mime>;base64,...`` URLs; ``functionCall`` parts -> tool
  calls with ids ``call_<n>`` (Gemini has none; numbered in answer order, so stable per answer).
  A stream delivers each call whole: one ToolCallDelta with id, name and all arguments.
- ``thoughtSignature`` on any part -> ``reasoning_signature``: compact JSON mapping the tool call id,
  ``image_<n>`` or ``text`` to its signature (streams send it once, just before the finish). When
  the client replays that assistant turn, each signature goes back on the matching part. For
  Gemini 3, which refuses an unsigned function call of the current turn, a replayed call without one
  gets Google's documented "skip_thought_signature_validator" (history from another model, or a
  client that dropped the field). Replayed reasoning text itself is not sent back.
- finishReason STOP -> stop, or tool_calls when the answer has function calls; MAX_TOKENS ->
  length; the safety family (FILTERED) -> content_filter; anything else -> stop. A prompt refused
  with ``promptFeedback.blockReason`` is a content_filter finish with empty content, never an error.
- usageMetadata: input = promptTokenCount (+ toolUsePromptTokenCount), cached = cachedContentTokenCount,
  output = candidatesTokenCount + thoughtsTokenCount, reasoning = thoughtsTokenCount. Streams use
  the last chunk that carries it.

Errors: ``{"error": {"code", "message", "status", "details"}}``. 429/RESOURCE_EXHAUSTED -> rate limited
(Retry-After or RetryInfo.retryDelay); 5xx/UNAVAILABLE/INTERNAL -> unavailable; 504 -> timeout;
401/403 and the 400 API_KEY_INVALID quirk -> auth failed, message scrubbed of the key; 404 -> not
found; token-limit 400s -> context window; other 4xx keep Gemini's message. An error inside a stream
arrives as bare JSON lines (no ``data:``), as the official SDK expects; both forms are read.
"""

import json
import mimetypes
import uuid
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx

from providers import errors
from providers.adapters.base import (
    Adapter,
    fetch_json,
    parse_retry_after,
    streamed_response,
    timeout_for,
    transport_error,
)
from providers.types import (
    ChatRequest,
    ChatResult,
    Delta,
    Finish,
    ImagePart,
    Message,
    StreamEvent,
    Target,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)

THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576,
                    "max": 24576}
FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
            "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"}
SKIP_SIGNATURE = "skip_thought_signature_validator"
SCHEMA_KEYS = ("title", "description", "nullable", "enum", "default", "example", "pattern", "minimum", "maximum",
               "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "required",
               "propertyOrdering")
SCHEMA_FORMATS = {"enum", "date-time", "int32", "int64", "float", "double"}


class GeminiAdapter(Adapter):
    wire_format = "gemini"

    async def complete(self, request: ChatRequest, target: Target) -> ChatResult:
        payload = await fetch_json(build_request(request, target, stream=False), target, error_from_response)
        return parse_answer(payload, target)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        prepared = build_request(request, target, stream=True)
        reader = AnswerReader()
        produced = False
        try:
            async with streamed_response(prepared, target, error_from_response) as response:
                async for chunk in read_chunks(response.aiter_lines()):
                    if chunk.get("error"):
                        raise stream_error(chunk["error"], target, produced=produced)
                    delta = reader.read(chunk)
                    if delta is not None:
                        produced = True
                        yield delta
        except httpx.TransportError as exc:
            if produced:
                raise errors.ProviderStreamBroken(
                    f"{target.provider} broke the stream: {type(exc).__name__}.", provider=target.provider
                ) from exc
            raise transport_error(exc, target) from exc
        except ValueError as exc:
            raise errors.ProviderStreamBroken(
                f"{target.provider} sent a stream event that is not JSON.", provider=target.provider
            ) from exc
        if reader.finish is None and not reader.blocked:
            raise errors.ProviderStreamBroken(
                f"{target.provider} ended the stream before a finish reason.", provider=target.provider
            )
        if reader.signatures:
            yield Delta(reasoning_signature=reader.signature())
        yield Finish(reader.finish_reason())
        if reader.usage is not None:
            yield UsageReport(reader.usage)


# --- request ---------------------------------------------------------------------------------

@lru_cache(maxsize=1024)
def model_url(base_url: str, model: str, stream: bool) -> httpx.URL:
    # Parsed once per provider and model, not per call (see openai_compatible.chat_completions_url).
    base = base_url.rstrip("/")
    if not base.endswith("/v1beta"):
        base += "/v1beta"
    if stream:
        return httpx.URL(f"{base}/models/{model}:streamGenerateContent", params={"alt": "sse"})
    return httpx.URL(f"{base}/models/{model}:generateContent")


def build_request(request: ChatRequest, target: Target, *, stream: bool) -> httpx.Request:
    return httpx.Request(
        "POST", model_url(target.base_url, target.upstream_model, stream),
        headers={"x-goog-api-key": target.api_key, "Content-Type": "application/json",
                 "Accept": "text/event-stream" if stream else "application/json"},
        content=json.dumps(build_body(request, target)).encode(),
        extensions={"timeout": timeout_for(target).as_dict()},
    )


def is_gemini_3(model: str) -> bool:
    return model.startswith("gemini-3")


def is_image_model(model: str) -> bool:
    return "-image" in model


def build_body(request: ChatRequest, target: Target) -> dict[str, Any]:
    system, contents = encode_messages(request.messages, target)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [declaration(tool, target) for tool in request.tools]}]
        if request.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": calling_config(request.tool_choice)}
    config = generation_config(request, target)
    if config:
        body["generationConfig"] = config
    return body


def encode_messages(messages: list[Message], target: Target) -> tuple[list[dict], list[dict]]:
    system: list[dict] = []
    contents: list[dict] = []
    tool_names: dict[str, str] = {}  # tool call id -> function name, from earlier assistant turns
    for message in messages:
        if message.role in ("system", "developer"):
            if message.text():
                system.append({"text": message.text()})
            continue
        if message.role == "assistant":
            tool_names.update({call.id: call.name for call in message.tool_calls})
            role, parts = "model", encode_assistant(message, target)
        elif message.role == "tool":
            role, parts = "user", [function_response(message, tool_names, target)]
        else:
            role, parts = "user", encode_content(message.content, target)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def encode_content(content: str | list | None, target: Target) -> list[dict]:
    if not content:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    return [image_part(part.url, target) if isinstance(part, ImagePart) else {"text": part.text}
            for part in content if isinstance(part, ImagePart) or part.text]


def image_part(url: str, target: Target) -> dict[str, Any]:
    if url.startswith("data:"):
        header, comma, data = url.partition(",")
        if not comma or not header.endswith(";base64"):
            raise errors.UnsupportedFeature(
                f"{target.provider} takes data: image URLs only in base64 (data:image/png;base64,...).",
                provider=target.provider,
            )
        return {"inlineData": {"mimeType": header[5:-7] or "image/png", "data": data}}
    mime = mimetypes.guess_type(urlsplit(url).path)[0]
    return {"fileData": {"mimeType": mime if mime and mime.startswith("image/") else "image/jpeg", "fileUri": url}}


def load_signatures(raw: str | None) -> dict[str, str]:
    # A signature from another provider is not ours to replay: Gemini would refuse it anyway.
    try:
        signatures = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {k: v for k, v in signatures.items() if isinstance(v, str)} if isinstance(signatures, dict) else {}


def signed(part: dict[str, Any], signature: str | None) -> dict[str, Any]:
    if signature:
        part["thoughtSignature"] = signature
    return part


def encode_assistant(message: Message, target: Target) -> list[dict]:
    signatures = load_signatures(message.reasoning_signature)
    parts = []
    text = message.text()
    if text or "text" in signatures:
        parts.append(signed({"text": text}, signatures.get("text")))
    images = [part for part in message.content if isinstance(part, ImagePart)] if isinstance(message.content, list) else []
    for index, image in enumerate(images):
        parts.append(signed(image_part(image.url, target), signatures.get(f"image_{index}")))
    fallback = SKIP_SIGNATURE if is_gemini_3(target.upstream_model) else None
    for call in message.tool_calls:
        call_part = {"functionCall": {"name": call.name, "args": call_arguments(call, target)}}
        parts.append(signed(call_part, signatures.get(call.id) or fallback))
    return parts


def call_arguments(call: ToolCall, target: Target) -> dict[str, Any]:
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise errors.ProviderBadRequest(
            f"Tool call '{call.id}' has arguments that are not a JSON object; {target.provider} takes function "
            f"arguments as an object.", provider=target.provider,
        )
    return arguments


def function_response(message: Message, tool_names: dict[str, str], target: Target) -> dict[str, Any]:
    name = tool_names.get(message.tool_call_id or "") or message.name
    if not name:
        raise errors.ProviderBadRequest(
            f"The tool message for tool_call_id '{message.tool_call_id}' follows no assistant tool call with that "
            f"id; {target.provider} needs the function's name with each tool result.", provider=target.provider,
        )
    text = message.text()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    # Gemini wants an object: a JSON object result goes as is, anything else under "output",
    # the key Google's SDK documents for a function's output.
    return {"functionResponse": {"name": name, "response": value if isinstance(value, dict) else {"output": text}}}


def declaration(tool: dict[str, Any], target: Target) -> dict[str, Any]:
    function = tool.get("function") or {}
    if not function.get("name"):
        raise errors.ProviderBadRequest("Every tool needs 'function.name'.", provider=target.provider)
    declared: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        declared["description"] = function["description"]
    if function.get("parameters"):
        schema = to_gemini_schema(function["parameters"])
        # Gemini refuses an OBJECT without properties; a function without arguments has none.
        if schema.get("type") != "OBJECT" or schema.get("properties"):
            declared["parameters"] = schema
    return declared


def to_gemini_schema(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """A JSON Schema as Gemini's OpenAPI-subset Schema (see the module docstring)."""
    if not isinstance(schema, dict) or depth > 40:
        return {}
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        return to_gemini_schema({**defs[ref.rsplit("/", 1)[-1]], **rest}, defs, depth + 1)
    out: dict[str, Any] = {key: schema[key] for key in SCHEMA_KEYS if key in schema}
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        if len(kinds) > 1:
            out["anyOf"] = [to_gemini_schema({**schema, "type": k}, defs, depth + 1) for k in kinds]
        kind = kinds[0] if len(kinds) == 1 else None
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind.upper()
    if "const" in schema:
        out["enum"] = [schema["const"]]
    if schema.get("format") in SCHEMA_FORMATS:
        out["format"] = schema["format"]
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: to_gemini_schema(sub, defs, depth + 1) for name, sub in schema["properties"].items()}
    if "items" in schema:
        out["items"] = to_gemini_schema(schema["items"], defs, depth + 1)
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list):
        out["anyOf"] = [to_gemini_schema(sub, defs, depth + 1) for sub in variants]
    if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        out = {**to_gemini_schema(schema["allOf"][0], defs, depth + 1), **out}
    return out


def calling_config(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return {"mode": "ANY", **({"allowedFunctionNames": [name]} if name else {})}
    return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice, "AUTO")}


def thinking_config(effort: str, model: str) -> dict[str, Any]:
    if is_gemini_3(model):
        level = "LOW" if effort in ("none", "minimal", "low") else "HIGH"
        return {"thinkingLevel": level, **({"includeThoughts": True} if effort != "none" else {})}
    budget = THINKING_BUDGETS.get(effort, THINKING_BUDGETS["medium"])
    return {"thinkingBudget": budget, **({"includeThoughts": True} if budget else {})}


def generation_config(request: ChatRequest, target: Target) -> dict[str, Any]:
    config: dict[str, Any] = {}
    optional = {"maxOutputTokens": request.max_output_tokens, "temperature": request.temperature,
                "topP": request.top_p, "stopSequences": request.stop or None, "seed": request.seed}
    config.update({key: value for key, value in optional.items() if value is not None})
    response_format = request.response_format or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if response_format["type"] == "json_schema" and schema:
            config["responseJsonSchema"] = schema
    if request.reasoning_effort:
        config["thinkingConfig"] = thinking_config(request.reasoning_effort, target.upstream_model)
    if is_image_model(target.upstream_model):
        config["responseModalities"] = ["TEXT", "IMAGE"]
    return config


# --- answer ----------------------------------------------------------------------------------

class AnswerReader:
    """Reads one answer's parts in order, whole or chunk by chunk: numbers tool calls and images,
    collects thought signatures, remembers the finish reason and the latest usage."""

    def __init__(self) -> None:
        self.tool_calls: list[ToolCall] = []
        self.image_count = 0
        self.signatures: dict[str, str] = {}
        self.finish: str | None = None
        self.blocked = False
        self.usage: Usage | None = None

    def read(self, payload: dict[str, Any]) -> Delta | None:
        self.usage = parse_usage(payload) or self.usage
        if (payload.get("promptFeedback") or {}).get("blockReason"):
            self.blocked = True
        candidates = payload.get("candidates") or []
        if not candidates:
            return None
        candidate = candidates[0]
        self.finish = candidate.get("finishReason") or self.finish
        text, thoughts, calls, images = [], [], [], []
        for part in (candidate.get("content") or {}).get("parts") or ():
            key = "text"
            if "functionCall" in part:
                call = part["functionCall"]
                index = len(self.tool_calls)
                tool_call = ToolCall(id=f"call_{index}", name=call.get("name", ""),
                                     arguments=json.dumps(call.get("args") or {}))
                self.tool_calls.append(tool_call)
                calls.append(ToolCallDelta(index=index, id=tool_call.id, name=tool_call.name,
                                           arguments=tool_call.arguments))
                key = tool_call.id
            elif "inlineData" in part:
                if part.get("thought"):
                    continue  # an interim "thought image", not part of the answer
                data = part["inlineData"]
                images.append(f"data:{data.get('mimeType') or 'image/png'};base64,{data.get('data', '')}")
                key = f"image_{self.image_count}"
                self.image_count += 1
            elif "text" in part:
                (thoughts if part.get("thought") else text).append(part["text"])
            if part.get("thoughtSignature"):
                self.signatures[key] = part["thoughtSignature"]
        if not (any(text) or any(thoughts) or calls or images):
            return None
        return Delta(content="".join(text) or None, reasoning="".join(thoughts) or None,
                     tool_calls=calls or None, images=images or None)

    def finish_reason(self) -> str:
        if self.blocked or self.finish in FILTERED:
            return "content_filter"
        if self.finish == "MAX_TOKENS":
            return "length"
        return "tool_calls" if self.tool_calls else "stop"

    def signature(self) -> str | None:
        return json.dumps(self.signatures, separators=(",", ":"), sort_keys=True) if self.signatures else None


def parse_usage(payload: dict[str, Any]) -> Usage | None:
    raw = payload.get("usageMetadata")
    if not raw:
        return None
    thoughts = int(raw.get("thoughtsTokenCount") or 0)
    return Usage(
        input_tokens=int(raw.get("promptTokenCount") or 0) + int(raw.get("toolUsePromptTokenCount") or 0),
        output_tokens=int(raw.get("candidatesTokenCount") or 0) + thoughts,
        reasoning_tokens=thoughts,
        cached_tokens=int(raw.get("cachedContentTokenCount") or 0),
    )


def parse_answer(payload: Any, target: Target) -> ChatResult:
    if not isinstance(payload, dict):
        raise errors.ProviderUnavailable(f"{target.provider} answered with an unexpected body.",
                                         provider=target.provider)
    reader = AnswerReader()
    delta = reader.read(payload) or Delta()
    if not payload.get("candidates") and not reader.blocked:
        raise errors.ProviderUnavailable(f"{target.provider} answered without a candidate.", provider=target.provider)
    content = delta.content
    if content is None and not (reader.tool_calls or delta.images):
        content = ""  # a refused prompt or an empty answer: empty text, as OpenAI answers a filtered one
    return ChatResult(
        id=f"chatcmpl-{payload.get('responseId') or uuid.uuid4().hex}",
        content=content,
        finish_reason=reader.finish_reason(),
        usage=reader.usage or Usage(),
        tool_calls=reader.tool_calls,
        reasoning=delta.reasoning,
        reasoning_signature=reader.signature(),
        images=delta.images or [],
        upstream_model=payload.get("modelVersion") or target.upstream_model,
    )


async def read_chunks(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """JSON objects from ``data:`` lines, and from bare JSON spread over lines, which is how an
    error arrives inside a stream (python-genai's _api_client reads both the same way)."""
    pending: list[str] = []
    depth = 0
    async for line in lines:
        if line.startswith("data:"):
            yield json.loads(line[5:])
        elif pending or line.strip().startswith(("{", "[")):
            pending.append(line)
            depth += line.count("{") + line.count("[") - line.count("}") - line.count("]")
            if depth <= 0:
                yield first_object(json.loads("\n".join(pending)))
                pending, depth = [], 0
    if pending:
        yield first_object(json.loads("\n".join(pending)))


def first_object(value: Any) -> dict[str, Any]:
    if isinstance(value, list):  # errors are sometimes wrapped in a one-element array
        value = value[0] if value else {}
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


# --- errors ----------------------------------------------------------------------------------

def error_from_response(status: int, headers: httpx.Headers, body: bytes, target: Target) -> errors.ProviderError:
    try:
        detail = first_object(json.loads(body)).get("error")
    except ValueError:
        detail = None
    if not isinstance(detail, dict):
        detail = {"message": body[:200].decode(errors="replace")}
    error = error_from_detail(detail, target, status=status)
    error.retry_after = parse_retry_after(headers) or retry_delay(detail)
    return error


def stream_error(detail: Any, target: Target, *, produced: bool) -> errors.ProviderError:
    detail = detail if isinstance(detail, dict) else {"message": str(detail)}
    code = detail.get("code")
    error = error_from_detail(detail, target, status=code if isinstance(code, int) else 500)
    if produced:  # the answer is already half-sent: nothing to retry, the client must know
        return errors.ProviderStreamBroken(error.message, provider=target.provider, upstream_status=error.upstream_status)
    return error


def retry_delay(detail: dict[str, Any]) -> float | None:
    for item in detail.get("details") or ():
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            try:
                return max(0.0, float(str(item.get("retryDelay", "")).rstrip("s")))
            except ValueError:
                return None
    return None


def error_from_detail(detail: dict[str, Any], target: Target, *, status: int) -> errors.ProviderError:
    grpc_status = str(detail.get("status") or "")
    message = str(detail.get("message") or "no message")
    if target.api_key:
        message = message.replace(target.api_key, "[redacted]")
    reasons = {item.get("reason") for item in detail.get("details") or () if isinstance(item, dict)}
    text = f"{target.provider} returned {status}{' ' + grpc_status if grpc_status else ''}: {message}"
    kwargs = {"provider": target.provider, "upstream_status": status}
    if (status in (401, 403) or grpc_status in ("UNAUTHENTICATED", "PERMISSION_DENIED", "FAILED_PRECONDITION")
            or "API_KEY_INVALID" in reasons):  # FAILED_PRECONDITION: billing or region, the operator's to fix
        return errors.ProviderAuthFailed(
            f"{text} The gateway's credential for {target.provider} was refused; the operator must fix it.", **kwargs
        )
    if status == 429 or grpc_status == "RESOURCE_EXHAUSTED":
        return errors.ProviderRateLimited(text, **kwargs)
    if status == 404 or grpc_status == "NOT_FOUND":
        return errors.ProviderNotFound(text, **kwargs)
    if status == 504 or grpc_status == "DEADLINE_EXCEEDED":
        return errors.ProviderTimeout(text, **kwargs)
    if status in (408, 409) or status >= 500 or grpc_status in ("UNAVAILABLE", "INTERNAL"):
        return errors.ProviderUnavailable(text, **kwargs)
    if "token count" in message and "exceeds" in message:
        return errors.ContextWindowExceeded(text, **kwargs)
    return errors.ProviderBadRequest(text, **kwargs)
