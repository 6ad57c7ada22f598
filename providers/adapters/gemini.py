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
- tools -> ``tools[0].functionDeclarations`` with Gemini's OpenAPI-subset Schema (gemini_schema);
  tool_choice auto/none/required/{function} -> AUTO/NONE/ANY/ANY+allowed.
- reasoning_effort -> ``thinkingConfig`` with ``includeThoughts`` (thought text comes back as
  reasoning): Gemini 3 models take ``thinkingLevel`` (none/minimal/low -> LOW, the rest -> HIGH, the
  two levels every Gemini 3 model accepts); older ones take ``thinkingBudget`` (THINKING_BUDGETS;
  "none" is 0, which 2.5 Pro refuses with its own 400 because it cannot stop thinking).
- Image models (upstream name contains "-image") get ``responseModalities: [TEXT, IMAGE]``.

Answer (Gemini -> IR):
- text parts -> content; ``thought: true`` parts -> reasoning (thought images are dropped);
  ``inlineData`` parts -> images as ``data:<mime>;base64,...`` URLs; ``functionCall`` parts -> tool
  calls with Gemini's ``id`` when it sends one, else a unique ``call_<24 hex>`` (ids must not repeat
  across turns: clients key calls by id, and a fallback to Anthropic needs unique tool_use ids).
  A stream delivers each call whole: one ToolCallDelta with id, name and all arguments. A replayed
  call goes back with its id, and the tool result as a ``functionResponse`` with the same id.
- ``reasoning_signature`` is ``{"gemini": [...]}``: the answer's parts in order (text by length,
  images by number, calls by id), each with its ``thoughtSignature``. It is sent when a part was
  signed or the order is not text, images, calls (streams send it once, just before the finish).
  A replayed assistant turn is rebuilt in that order with each signature on its part (an older flat
  ``{"text"|"image_<n>"|<call id>: signature}`` map is still read). For Gemini 3, which refuses an
  unsigned function call of the current turn, a replayed call without one gets Google's documented
  "skip_thought_signature_validator". Replayed reasoning text itself is not sent back.
- finishReason STOP -> stop, or tool_calls when the answer has function calls; MAX_TOKENS ->
  length; the safety family (FILTERED) -> content_filter; FAILED (a malformed or unexpected call,
  OTHER) -> ProviderUnavailable, or ProviderStreamBroken once a stream has sent output; anything
  else -> stop. A prompt refused with ``promptFeedback.blockReason`` is a content_filter finish with
  empty content, never an error.
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
from providers.adapters import gemini_audio, gemini_images, gemini_video
from providers.adapters.base import (
    Adapter,
    fetch_json,
    parse_retry_after,
    stream_transport_error,
    streamed_response,
    timeout_for,
)
from providers.adapters.gemini_schema import calling_config, declaration
from providers.types import (
    ChatRequest,
    ChatResult,
    Delta,
    Finish,
    ImagePart,
    ImageRequest,
    ImageResult,
    Message,
    SpeechRequest,
    SpeechResult,
    StreamEvent,
    Target,
    ToolCall,
    ToolCallDelta,
    TranscriptionRequest,
    TranscriptionResult,
    Usage,
    UsageReport,
    VideoJobState,
    VideoRequest,
)

THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576,
                    "max": 24576}
FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
            "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"}
# Finishes that leave no usable answer: an error (retryable before output), never an empty success.
FAILED = {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "OTHER"}
SKIP_SIGNATURE = "skip_thought_signature_validator"
SIGNED = "thoughtSignature"  # the wire key, also the key of a signed part in our reasoning_signature


class GeminiAdapter(Adapter):
    wire_format = "gemini"

    async def generate_images(self, request: ImageRequest, target: Target) -> ImageResult:
        return await gemini_images.generate_images(request, target)

    async def edit_images(self, request: ImageRequest, target: Target) -> ImageResult:
        return await gemini_images.edit_images(request, target)

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
                    if reader.failed():
                        raise reader.failure(target, produced=produced)
                    if delta is not None:
                        produced = True
                        yield delta
        except httpx.TransportError as exc:
            raise stream_transport_error(exc, target, produced=produced) from exc
        except ValueError as exc:
            raise errors.ProviderStreamBroken(
                f"{target.provider} sent a stream event that is not JSON.", provider=target.provider
            ) from exc
        if reader.finish is None and not reader.blocked:
            raise errors.ProviderStreamBroken(
                f"{target.provider} ended the stream before a finish reason.", provider=target.provider
            )
        signature = reader.signature()
        if signature:
            yield Delta(reasoning_signature=signature)
        yield Finish(reader.finish_reason())
        if reader.usage is not None:
            yield UsageReport(reader.usage)

    async def submit_video(self, request: VideoRequest, target: Target) -> VideoJobState:
        return await gemini_video.submit_video(request, target)

    async def poll_video(self, state: VideoJobState, target: Target) -> VideoJobState:
        return await gemini_video.poll_video(state, target)

    async def speech(self, request: SpeechRequest, target: Target) -> SpeechResult:
        return await gemini_audio.speech(request, target)

    async def transcribe(self, request: TranscriptionRequest, target: Target) -> TranscriptionResult:
        return await gemini_audio.transcribe(request, target)


# --- request ---------------------------------------------------------------------------------

@lru_cache(maxsize=1024)
def model_url(base_url: str, model: str, stream: bool) -> httpx.URL:
    # Parsed once per provider and model, not per call (see openai_compatible.route_url).
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


def load_layout(raw: str | None, text: str, images: int, calls: list[ToolCall]) -> list[dict[str, Any]]:
    """The recorded parts of an answer (see AnswerReader.layout), from our reasoning_signature:
    ``{"gemini": [...]}``, or the older flat map ``{"text"|"image_<n>"|<call id>: signature}``, read as
    text, images, calls. Anything else (another provider's signature) is not ours: Gemini would
    refuse it, so it is not sent."""
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return []
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("gemini"), list):
        return [entry for entry in value["gemini"] if valid_entry(entry)]
    if not value or not all(isinstance(v, str) for v in value.values()):
        return []  # e.g. Anthropic's {"anthropic": [...]}
    layout = [{"text": len(text), SIGNED: value["text"]}] if "text" in value else []
    layout += [{"image": n, SIGNED: value[f"image_{n}"]} for n in range(images) if f"image_{n}" in value]
    return layout + [{"call": call.id, SIGNED: value[call.id]} for call in calls if call.id in value]


def valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get(SIGNED, ""), str):
        return False
    kinds = [key for key in ("text", "image", "call") if key in entry]
    if len(kinds) != 1:
        return False
    ref = entry[kinds[0]]
    return isinstance(ref, str) if kinds[0] == "call" else type(ref) is int and ref >= 0


def arrange(layout: list[dict[str, Any]], text: str, images: int, calls: list[ToolCall]) -> list[dict[str, Any]]:
    """The replayed turn's parts, in the recorded order where the message still matches it: every
    image and call of the message once (unrecorded ones after the rest), the text as recorded."""
    call_ids = {call.id for call in calls}
    seen: set[tuple[str, Any]] = set()
    arranged = []
    for entry in layout:
        kind = next(key for key in ("text", "image", "call") if key in entry)
        if kind == "image" and entry["image"] >= images or kind == "call" and entry["call"] not in call_ids:
            continue
        if kind != "text" and (kind, entry[kind]) in seen:
            continue
        seen.add((kind, entry[kind]))
        arranged.append(dict(entry))
    texts = [entry for entry in arranged if "text" in entry]
    if sum(entry["text"] for entry in texts) != len(text):
        # The client changed the text: one part where the first was, with the last text signature.
        signatures = [entry[SIGNED] for entry in texts if entry.get(SIGNED)]
        whole = {"text": len(text), **({SIGNED: signatures[-1]} if signatures else {})}
        first = arranged.index(texts[0]) if texts else 0
        arranged = [entry for entry in arranged if "text" not in entry]
        arranged.insert(first, whole)
    arranged += [{"image": n} for n in range(images) if ("image", n) not in seen]
    return arranged + [{"call": call.id} for call in calls if ("call", call.id) not in seen]


def signed(part: dict[str, Any], signature: str | None) -> dict[str, Any]:
    if signature:
        part[SIGNED] = signature
    return part


def encode_assistant(message: Message, target: Target) -> list[dict]:
    text = message.text()
    images = [part for part in message.content if isinstance(part, ImagePart)] if isinstance(message.content, list) else []
    calls = {call.id: call for call in message.tool_calls}
    layout = load_layout(message.reasoning_signature, text, len(images), message.tool_calls)
    fallback = SKIP_SIGNATURE if is_gemini_3(target.upstream_model) else None
    parts, offset = [], 0
    for entry in arrange(layout, text, len(images), message.tool_calls):
        signature = entry.get(SIGNED)
        if "text" in entry:
            piece, offset = text[offset:offset + entry["text"]], offset + entry["text"]
            if piece or signature:
                parts.append(signed({"text": piece}, signature))
        elif "image" in entry:
            parts.append(signed(image_part(images[entry["image"]].url, target), signature))
        else:
            call = calls[entry["call"]]
            # The id goes back as sent (Gemini's own, or ours), matched by the functionResponse's.
            call_part = {"functionCall": {"id": call.id, "name": call.name, "args": call_arguments(call, target)}}
            parts.append(signed(call_part, signature or fallback))
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
    response = {"name": name, "response": value if isinstance(value, dict) else {"output": text}}
    return {"functionResponse": {"id": message.tool_call_id, **response} if message.tool_call_id else response}


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
    """Reads one answer's parts in order, whole or chunk by chunk: gives tool calls their ids and
    numbers images, records the parts' order and thought signatures (``layout``), remembers the
    finish reason and the latest usage."""

    def __init__(self) -> None:
        self.tool_calls: list[ToolCall] = []
        self.image_count = 0
        # One entry per answer part, in order: {"text": <characters>} (consecutive text merges, as
        # a stream splits one part over chunks), {"image": <n>} or {"call": <id>}; each with the
        # part's thoughtSignature when it had one.
        self.layout: list[dict[str, Any]] = []
        self.finish: str | None = None
        self.finish_message = ""
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
        self.finish_message = str(candidate.get("finishMessage") or self.finish_message)
        text, thoughts, calls, images = [], [], [], []
        for part in (candidate.get("content") or {}).get("parts") or ():
            signature = part.get("thoughtSignature") or None
            if "functionCall" in part:
                calls.append(self.add_call(part["functionCall"], signature))
            elif "inlineData" in part:
                if part.get("thought"):
                    continue  # an interim "thought image", not part of the answer
                data = part["inlineData"]
                images.append(f"data:{data.get('mimeType') or 'image/png'};base64,{data.get('data', '')}")
                self.layout.append(signed({"image": self.image_count}, signature))
                self.image_count += 1
            elif "text" in part:
                (thoughts if part.get("thought") else text).append(part["text"])
                # A thought's signature goes back on the answer text that follows it.
                self.add_text("" if part.get("thought") else part["text"], signature)
        if not (any(text) or any(thoughts) or calls or images):
            return None
        return Delta(content="".join(text) or None, reasoning="".join(thoughts) or None,
                     tool_calls=calls or None, images=images or None)

    def add_call(self, call: dict[str, Any], signature: str | None) -> ToolCallDelta:
        # Gemini's own id when it sends one; else ours, unique, as clients and other providers'
        # histories (a fallback to Anthropic) expect of a tool call id.
        call_id = call["id"] if isinstance(call.get("id"), str) and call["id"] else f"call_{uuid.uuid4().hex[:24]}"
        index = len(self.tool_calls)
        tool_call = ToolCall(id=call_id, name=call.get("name", ""), arguments=json.dumps(call.get("args") or {}))
        self.tool_calls.append(tool_call)
        self.layout.append(signed({"call": call_id}, signature))
        return ToolCallDelta(index=index, id=tool_call.id, name=tool_call.name, arguments=tool_call.arguments)

    def add_text(self, text: str, signature: str | None) -> None:
        last = self.layout[-1] if self.layout else None
        if last is not None and "text" in last and not (signature and last.get(SIGNED)):
            last["text"] += len(text)
            if signature:
                last[SIGNED] = signature
        elif text or signature:
            self.layout.append(signed({"text": len(text)}, signature))

    def failed(self) -> bool:
        return self.finish in FAILED and not self.blocked

    def failure(self, target: Target, *, produced: bool) -> errors.ProviderError:
        message = self.finish_message[:200]
        detail = f": {message.replace(target.api_key, '[redacted]') if target.api_key else message}" if message else ""
        text = f"{target.provider} stopped without a usable answer (finishReason {self.finish}){detail}"
        if produced:  # part of the answer is already out: the client must learn it is incomplete
            return errors.ProviderStreamBroken(text, provider=target.provider)
        return errors.ProviderUnavailable(text, provider=target.provider)

    def finish_reason(self) -> str:
        if self.blocked or self.finish in FILTERED:
            return "content_filter"
        if self.finish == "MAX_TOKENS":
            return "length"
        return "tool_calls" if self.tool_calls else "stop"

    def signature(self) -> str | None:
        """The layout as our reasoning_signature when a replay needs it (a signed part, or an order
        other than text, images, calls)."""
        kinds = [next(key for key in ("text", "image", "call") if key in entry) for entry in self.layout]
        ranks = [("text", "image", "call").index(kind) for kind in kinds]
        default = ranks == sorted(ranks) and kinds.count("text") <= 1
        if default and not any(entry.get(SIGNED) for entry in self.layout):
            return None
        return json.dumps({"gemini": self.layout}, separators=(",", ":"))


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
    if reader.failed():  # nothing reached the client yet: the router may retry or fall back
        raise reader.failure(target, produced=False)
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
