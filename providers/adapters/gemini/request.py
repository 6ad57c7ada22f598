"""Gemini chat requests, IR -> Gemini (camelCase as the REST API speaks it):
- system and developer messages, wherever they sit -> ``systemInstruction.parts``, in order.
- user -> a ``user`` content; assistant -> a ``model`` content (text, images, ``functionCall`` parts);
  tool -> a ``user`` content with a ``functionResponse`` part whose name is recovered from the
  earlier assistant tool call with that id. Consecutive contents of one role are merged, so
  parallel tool results arrive in the one turn Gemini expects.
- A ``data:`` image -> ``inlineData``; an http(s) image -> ``fileData {mimeType, fileUri}``, which
  the API fetches itself (public and signed URLs, announced Jan 2026); the MIME type is guessed from
  the URL's extension, image/jpeg when it has none.
- max tokens, temperature, top_p, stop, seed, frequency/presence penalty, logprobs (-> ``responseLogprobs``)
  and top_logprobs (-> ``logprobs``) -> ``generationConfig``; ``json_object`` ->
  ``responseMimeType: application/json``; ``json_schema`` -> that plus ``responseJsonSchema``, the
  plain-JSON-Schema field, so the client's schema is sent unchanged.
- tools -> ``tools[0].functionDeclarations`` with Gemini's OpenAPI-subset Schema (gemini_schema);
  tool_choice auto/none/required/{function} -> AUTO/NONE/ANY/ANY+allowed.
- reasoning_effort -> ``thinkingConfig`` with ``includeThoughts`` (thought text comes back as
  reasoning): Gemini 3 models take ``thinkingLevel`` (none/minimal/low -> LOW, the rest -> HIGH, the
  two levels every Gemini 3 model accepts); older ones take ``thinkingBudget``: a client's own
  thinking_budget (Anthropic's budget_tokens) up to MAX_THINKING_BUDGET, else THINKING_BUDGETS
  ("none" is 0, which 2.5 Pro refuses with its own 400 because it cannot stop thinking).
- Image models (upstream name contains "-image") get ``responseModalities: [TEXT, IMAGE]``.
- A replayed assistant turn is rebuilt in the order its reasoning_signature recorded
  (gemini_answer.AnswerReader.layout), each thoughtSignature on its part (an older flat
  ``{"text"|"image_<n>"|<call id>: signature}`` map is still read). For Gemini 3, which refuses an
  unsigned function call of the current turn, a replayed call without one gets Google's documented
  "skip_thought_signature_validator". Replayed reasoning text itself is not sent back.
"""

import json
import mimetypes
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx

from providers import errors
from providers.adapters.gemini.answer import SIGNED, signed
from providers.adapters.gemini.schema import calling_config, declaration
from providers.adapters.http_calls import post_json
from providers.http import Prepared
from providers.types import ChatRequest, ImagePart, Message, Target, ToolCall

THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576,
                    "max": 24576}
MAX_THINKING_BUDGET = 24576  # 2.5 Flash's ceiling (Pro takes 32768)
SKIP_SIGNATURE = "skip_thought_signature_validator"


@lru_cache(maxsize=256)
def api_base(base_url: str) -> str:
    """The API's root, ``/v1beta`` added unless the provider's base URL already ends with it."""
    base = base_url.rstrip("/")
    return base if base.endswith("/v1beta") else base + "/v1beta"


@lru_cache(maxsize=1024)
def model_url(base_url: str, model: str, verb: str) -> httpx.URL:
    # Parsed once per provider, model and verb, not per call (see openai_compatible.route_url).
    params = {"alt": "sse"} if verb == "streamGenerateContent" else None
    return httpx.URL(f"{api_base(base_url)}/models/{model}:{verb}", params=params)


def api_headers(target: Target, *, accept: str = "application/json") -> dict[str, str]:
    return {"x-goog-api-key": target.api_key, "Content-Type": "application/json", "Accept": accept}


def post(target: Target, verb: str, body: dict[str, Any]) -> Prepared:
    """A JSON call to the target model's ``verb`` (the media endpoints' requests)."""
    return post_json(model_url(target.base_url, target.upstream_model, verb), api_headers(target), body, target)


def build_request(request: ChatRequest, target: Target, *, stream: bool) -> Prepared:
    verb = "streamGenerateContent" if stream else "generateContent"
    return post_json(model_url(target.base_url, target.upstream_model, verb),
                     api_headers(target, accept="text/event-stream" if stream else "application/json"),
                     build_body(request, target), target)


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


def thinking_config(effort: str, model: str, budget: int | None = None) -> dict[str, Any]:
    if is_gemini_3(model):
        level = "LOW" if effort in ("none", "minimal", "low") else "HIGH"
        return {"thinkingLevel": level, **({"includeThoughts": True} if effort != "none" else {})}
    if budget is not None and effort != "none":  # a client's own budget, up to what every 2.5 model takes
        budget = min(budget, MAX_THINKING_BUDGET)
    else:
        budget = THINKING_BUDGETS.get(effort, THINKING_BUDGETS["medium"])
    return {"thinkingBudget": budget, **({"includeThoughts": True} if budget else {})}


def generation_config(request: ChatRequest, target: Target) -> dict[str, Any]:
    config: dict[str, Any] = {}
    optional = {"maxOutputTokens": request.max_output_tokens, "temperature": request.temperature,
                "topP": request.top_p, "stopSequences": request.stop or None, "seed": request.seed,
                "frequencyPenalty": request.frequency_penalty, "presencePenalty": request.presence_penalty,
                "responseLogprobs": request.logprobs or None,
                "logprobs": request.top_logprobs if request.logprobs else None}
    config.update({key: value for key, value in optional.items() if value is not None})
    response_format = request.response_format or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if response_format["type"] == "json_schema" and schema:
            config["responseJsonSchema"] = schema
    if request.reasoning_effort:
        config["thinkingConfig"] = thinking_config(request.reasoning_effort, target.upstream_model,
                                                   request.thinking_budget)
    if is_image_model(target.upstream_model):
        config["responseModalities"] = ["TEXT", "IMAGE"]
    return config

