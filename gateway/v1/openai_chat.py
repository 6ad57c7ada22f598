"""OpenAI Chat Completions as a client protocol: decode a request, encode results, chunks and streams.

Decoding is strict: a wrong type or an unknown argument is a 400 that names the field, as
OpenAI's own API answers, rather than a silently ignored setting.
"""

import json
import time
from typing import Any

from gateway.v1 import sse
from gateway.v1.errors import GatewayError, bad_request, error_body
from gateway.v1.json_body import decoder
from providers.types import (
    ChatRequest,
    ChatResult,
    ContentPart,
    Delta,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    UrlCitation,
    Usage,
    WebSearchOptions,
)

ROLES = ("system", "developer", "user", "assistant", "tool")  # tuples: a list sent as a value compares unequal, never raises
# Accepted and not forwarded: they change nothing a provider computes.
IGNORED = {"store", "metadata", "service_tier", "prompt_cache_key", "safety_identifier", "parallel_tool_calls"}
SUPPORTED = {
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "stop", "seed", "n", "tools", "tool_choice", "response_format", "reasoning_effort", "user",
    "fallback_models", "models", "web_search_options",
}
WEB_SEARCH_TOOLS = ("web_search", "web_search_preview")  # the Responses API's names, accepted here too
SEARCH_CONTEXT_SIZES = ("low", "medium", "high")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


def expect(value: Any, kind: type | tuple[type, ...], param: str, what: str) -> Any:
    # bool is an int in Python; a JSON true is never a valid number here.
    if isinstance(value, bool) and kind is not bool:
        raise bad_request(f"'{param}' must be {what}, not a boolean.", param=param, code="invalid_type")
    if not isinstance(value, kind):
        raise bad_request(f"'{param}' must be {what}, not {json.dumps(value)[:60]}.", param=param,
                          code="invalid_type")
    return value


def number_in(payload: dict, name: str, low: float, high: float) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    expect(value, (int, float), name, "a number")
    if not low <= value <= high:
        raise bad_request(f"'{name}' must be between {low:g} and {high:g}, not {value}.", param=name)
    return float(value)


def positive_int(payload: dict, name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    expect(value, int, name, "an integer")
    if value < 1:
        raise bad_request(f"'{name}' must be at least 1, not {value}.", param=name)
    return value


def decode_content(value: Any, param: str) -> str | list[ContentPart] | None:
    if value is None or isinstance(value, str):
        return value
    expect(value, list, param, "a string or a list of content parts")
    parts: list[ContentPart] = []
    for index, part in enumerate(value):
        where = f"{param}[{index}]"
        expect(part, dict, where, "an object")
        kind = part.get("type")
        if kind == "text":
            parts.append(TextPart(expect(part.get("text"), str, f"{where}.text", "a string")))
        elif kind == "image_url":
            image = expect(part.get("image_url"), dict, f"{where}.image_url", "an object with 'url'")
            url = expect(image.get("url"), str, f"{where}.image_url.url", "a URL string")
            if not url.startswith(("https://", "http://", "data:image/")):
                raise bad_request(f"'{where}.image_url.url' must be an http(s) URL or a data:image/... URL.",
                                  param=f"{where}.image_url.url")
            parts.append(ImagePart(url=url, detail=str(image.get("detail") or "auto")))
        else:
            raise bad_request(f"'{where}.type' must be 'text' or 'image_url', not {json.dumps(kind)}.",
                              param=f"{where}.type")
    return parts


def decode_tool_calls(value: Any, param: str) -> list[ToolCall]:
    if value is None:
        return []
    expect(value, list, param, "a list")
    calls = []
    for index, call in enumerate(value):
        where = f"{param}[{index}]"
        expect(call, dict, where, "an object")
        function = expect(call.get("function"), dict, f"{where}.function", "an object")
        calls.append(ToolCall(
            id=expect(call.get("id"), str, f"{where}.id", "a string"),
            name=expect(function.get("name"), str, f"{where}.function.name", "a string"),
            arguments=expect(function.get("arguments", ""), str, f"{where}.function.arguments", "a JSON string"),
        ))
    return calls


def decode_messages(value: Any) -> list[Message]:
    expect(value, list, "messages", "a list of messages")
    if not value:
        raise bad_request("'messages' must contain at least one message.", param="messages")
    messages = []
    for index, raw in enumerate(value):
        where = f"messages[{index}]"
        expect(raw, dict, where, "an object with 'role' and 'content'")
        role = raw.get("role")
        if role not in ROLES:
            raise bad_request(f"'{where}.role' must be one of {', '.join(sorted(ROLES))}, not {json.dumps(role)}.",
                              param=f"{where}.role")
        message = Message(
            role=role,
            content=decode_content(raw.get("content"), f"{where}.content"),
            name=expect(raw["name"], str, f"{where}.name", "a string") if raw.get("name") is not None else None,
            tool_calls=decode_tool_calls(raw.get("tool_calls"), f"{where}.tool_calls") if role == "assistant" else [],
            tool_call_id=raw.get("tool_call_id") if role == "tool" else None,
        )
        if role == "assistant":
            # Reasoning replayed from an earlier answer (DeepSeek, Anthropic, Gemini need it back).
            for key, attribute in (("reasoning_content", "reasoning"), ("reasoning_signature", "reasoning_signature")):
                if raw.get(key) is not None:
                    setattr(message, attribute, expect(raw[key], str, f"{where}.{key}", "a string"))
        if message.content is None and not message.tool_calls:
            raise bad_request(f"'{where}.content' is required.", param=f"{where}.content")
        if role == "tool" and not isinstance(message.tool_call_id, str):
            raise bad_request(f"'{where}.tool_call_id' is required on tool messages.", param=f"{where}.tool_call_id")
        messages.append(message)
    return messages


def refuse_unknown(payload: dict, *known: set[str]) -> None:
    """OpenAI's 400 for an argument that is in none of the ``known`` sets."""
    unknown = sorted(set(payload).difference(*known))
    if unknown:
        raise bad_request(f"Unrecognized request argument supplied: {', '.join(unknown)}.", param=unknown[0],
                          code="unknown_parameter")


def model_of(payload: dict) -> str:
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required: a model id such as 'demo/echo' (GET /v1/models lists yours).",
                          param="model", code="missing_required_parameter" if model is None else "invalid_type")
    return model


@decoder
def decode(payload: dict[str, Any]) -> ChatRequest:
    refuse_unknown(payload, SUPPORTED, IGNORED)
    model = model_of(payload)
    if "messages" not in payload:
        raise bad_request("'messages' is required.", param="messages", code="missing_required_parameter")
    stream = payload.get("stream") or False
    expect(stream, bool, "stream", "true or false")
    stream_options = payload.get("stream_options")
    if stream_options is not None:
        expect(stream_options, dict, "stream_options", "an object")
        if not stream:
            raise bad_request("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
    include_usage = (stream_options or {}).get("include_usage", False)
    expect(include_usage, bool, "stream_options.include_usage", "true or false")
    n = positive_int(payload, "n")
    if n not in (None, 1):
        raise bad_request("'n' must be 1: the gateway returns one choice per request.", param="n")
    stop = payload.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None:
        expect(stop, list, "stop", "a string or a list of up to 4 strings")
        if len(stop) > 4 or not all(isinstance(item, str) for item in stop):
            raise bad_request("'stop' must be a string or a list of up to 4 strings.", param="stop")
    max_completion = positive_int(payload, "max_completion_tokens")
    max_tokens = positive_int(payload, "max_tokens")
    seed = payload.get("seed")
    if seed is not None:
        expect(seed, int, "seed", "an integer")
    tools = payload.get("tools")
    web_search = decode_web_search_options(payload.get("web_search_options"))
    if tools is not None:
        expect(tools, list, "tools", "a list of function tools")
        for index, tool in enumerate(tools):
            expect(tool, dict, f"tools[{index}]", "an object")
            if tool.get("type") in WEB_SEARCH_TOOLS:
                web_search = web_search or decode_web_search_tool(tool, f"tools[{index}]")
            elif tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
                raise bad_request(f"'tools[{index}]' must be {{'type': 'function', 'function': {{...}}}} or "
                                  "{'type': 'web_search'}.", param=f"tools[{index}]")
        tools = [tool for tool in tools if tool.get("type") == "function"] or None
    tool_choice = payload.get("tool_choice")
    if tool_choice is not None and not (tool_choice in ("none", "auto", "required") or isinstance(tool_choice, dict)):
        raise bad_request("'tool_choice' must be 'none', 'auto', 'required' or {'type': 'function', ...}.",
                          param="tool_choice")
    response_format = payload.get("response_format")
    if response_format is not None:
        expect(response_format, dict, "response_format", "an object")
        if response_format.get("type") not in ("text", "json_object", "json_schema"):
            raise bad_request("'response_format.type' must be 'text', 'json_object' or 'json_schema'.",
                              param="response_format.type")
    effort = payload.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise bad_request(f"'reasoning_effort' must be one of {', '.join(sorted(REASONING_EFFORTS))}.",
                          param="reasoning_effort")
    user = payload.get("user")
    if user is not None:
        expect(user, str, "user", "a string")
    fallbacks = decode_fallbacks(payload, model)
    return ChatRequest(
        model=model,
        messages=decode_messages(payload["messages"]),
        stream=stream,
        include_usage=include_usage,
        max_output_tokens=max_completion or max_tokens,
        temperature=number_in(payload, "temperature", 0, 2),
        top_p=number_in(payload, "top_p", 0, 1),
        stop=stop or [],
        seed=seed,
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
        reasoning_effort=effort,
        user=user,
        fallback_models=fallbacks,
        web_search=web_search,
    )


def decode_search_location(value: Any, param: str) -> str | None:
    """The country of OpenAI's approximate user_location ({"type": "approximate", "approximate":
    {"country": "GB", ...}} in chat completions; flat in the Responses API's tool)."""
    if value is None:
        return None
    expect(value, dict, param, "an object such as {'type': 'approximate', 'approximate': {'country': 'GB'}}")
    place = value.get("approximate", value)
    expect(place, dict, f"{param}.approximate", "an object")
    country = place.get("country")
    if country is None:
        return None
    if not (isinstance(country, str) and len(country) == 2 and country.isalpha()):
        raise bad_request(f"'{param}.country' must be a two-letter ISO country code such as 'GB'.",
                          param=f"{param}.country")
    return country.upper()


def decode_search_context_size(value: Any, param: str) -> str:
    if value is None:
        return "medium"
    if value not in SEARCH_CONTEXT_SIZES:
        raise bad_request(f"'{param}' must be one of {', '.join(SEARCH_CONTEXT_SIZES)}.", param=param)
    return value


def decode_web_search_options(value: Any) -> WebSearchOptions | None:
    """OpenAI's ``web_search_options`` (search models): the gateway searches for any model."""
    if value is None:
        return None
    expect(value, dict, "web_search_options", "an object")
    return WebSearchOptions(
        context_size=decode_search_context_size(value.get("search_context_size"),
                                                "web_search_options.search_context_size"),
        country=decode_search_location(value.get("user_location"), "web_search_options.user_location"))


def decode_web_search_tool(tool: dict, param: str) -> WebSearchOptions:
    """``{"type": "web_search"}`` (or ``web_search_preview``), as the Responses API declares it."""
    return WebSearchOptions(
        context_size=decode_search_context_size(tool.get("search_context_size"), f"{param}.search_context_size"),
        country=decode_search_location(tool.get("user_location"), f"{param}.user_location"))


def decode_fallbacks(payload: dict, model: str) -> list[str]:
    """``fallback_models``, or OpenRouter's ``models`` (the whole order, ``model`` first)."""
    for name in ("fallback_models", "models"):
        value = payload.get(name)
        if value is None:
            continue
        expect(value, list, name, "a list of model ids")
        if not all(isinstance(item, str) and item for item in value) or len(value) > 5:
            raise bad_request(f"'{name}' must be a list of at most 5 model ids.", param=name)
        return [item for item in value if item != model]
    return []


def encode_usage(usage: Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": usage.cached_tokens}
    if usage.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens  # ours: OpenAI has no cache writes
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def encode_annotations(citations: list[UrlCitation]) -> list[dict[str, Any]]:
    """Web search citations, as OpenAI's search models annotate their answers."""
    return [{"type": "url_citation", "url_citation": {"start_index": citation.start_index,
                                                      "end_index": citation.end_index,
                                                      "title": citation.title, "url": citation.url}}
            for citation in citations]


def image_parts(urls: list[str]) -> list[dict[str, Any]]:
    return [{"type": "image_url", "image_url": {"url": url}} for url in urls]


def encode_completion(result: ChatResult, *, completion_id: str, model: str) -> dict[str, Any]:
    content: str | list[dict[str, Any]] | None = result.content
    if result.images:
        # Models that draw (Gemini image models) answer with content parts: text, then images
        # as data: URLs, the shape clients already send images in.
        content = ([{"type": "text", "text": result.content}] if result.content else []) + image_parts(result.images)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None,
                               "annotations": encode_annotations(result.annotations)}
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    if result.reasoning_signature:
        message["reasoning_signature"] = result.reasoning_signature
    if result.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in result.tool_calls
        ]
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": result.finish_reason}],
        "usage": encode_usage(result.usage),
    }
    if result.citations:
        body["citations"] = result.citations  # as Perplexity answers them
    return body


class ChunkEncoder:
    """Builds the chunks of one stream: same id, created and model on every chunk; ``usage``
    null on each until the final usage chunk when the client asked for it."""

    def __init__(self, *, completion_id: str, model: str, include_usage: bool):
        self.head = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model}
        self.include_usage = include_usage

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        chunk = {**self.head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                           "finish_reason": finish_reason}]}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def role(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""}, None)

    def delta(self, delta: Delta) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if delta.content is not None:
            out["content"] = delta.content
        if delta.reasoning is not None:
            out["reasoning_content"] = delta.reasoning
        if delta.reasoning_signature is not None:
            out["reasoning_signature"] = delta.reasoning_signature
        if delta.images:
            out["images"] = image_parts(delta.images)  # beside content, which stays text in a stream
        if delta.citations:
            out["citations"] = delta.citations
        if delta.annotations:
            out["annotations"] = encode_annotations(delta.annotations)
        if delta.tool_calls:
            out["tool_calls"] = [
                {"index": call.index, **({"id": call.id, "type": "function"} if call.id else {}),
                 "function": {**({"name": call.name} if call.name else {}), "arguments": call.arguments}}
                for call in delta.tool_calls
            ]
        return self._chunk(out, None)

    def finish(self, reason: str) -> dict[str, Any]:
        return self._chunk({}, reason)

    def usage(self, usage: Usage) -> dict[str, Any]:
        return {**self.head, "choices": [], "usage": encode_usage(usage)}


class OpenAIStream:
    """Chat Completions chunks as a StreamEncoder."""

    def __init__(self, encoder: ChunkEncoder):
        self.encoder = encoder

    def opening(self) -> bytes:
        return sse.event(self.encoder.role())

    def delta(self, delta: Delta) -> bytes:
        return sse.event(self.encoder.delta(delta))

    def finish(self, reason: str) -> bytes:
        return sse.event(self.encoder.finish(reason))

    def closing(self, usage: Usage) -> bytes:
        return sse.event(self.encoder.usage(usage)) if self.encoder.include_usage else b""

    def done(self) -> bytes:
        return sse.DONE

    def failure(self, error: GatewayError) -> bytes:
        # The SDK raises APIError on a data event with an "error" key: the client learns the
        # answer is incomplete instead of seeing a clean finish.
        return sse.event(error_body(error.message, type=error.type, code=error.code))
