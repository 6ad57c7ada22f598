"""OpenAI Chat Completions as a client protocol: decode a request. The answer, whole or as a
stream of chunks, is gateway.v1.openai_chat_answer.

Decoding is strict: a wrong type or an unknown argument is a 400 that names the field, as
OpenAI's own API answers, rather than a silently ignored setting.
"""

import json
from typing import Any

from gateway.v1.chat_arguments import (
    decode_legacy_functions,
    decode_sampling,
    function_result,
    legacy_call,
    refuse_unservable,
)
from gateway.v1.errors import bad_request
from gateway.v1.gateway_tool_options import decode_gateway_tool, is_gateway_tool
from gateway.v1.json_body import decode_metadata, decoder, expect, number_in, positive_int
from gateway.v1.search_options import (
    WEB_SEARCH_TOOLS,
    decode_web_search_options,
    decode_web_search_tool,
)
from providers.types import (
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    WebSearchOptions,
)

ROLES = ("system", "developer", "user", "assistant", "tool")  # tuples: a list sent as a value compares unequal, never raises
# Accepted and not forwarded: they change nothing a provider computes.
IGNORED = {"store", "service_tier", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
           "safety_identifier", "parallel_tool_calls"}
SUPPORTED = {
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "stop", "seed", "n", "tools", "tool_choice", "response_format", "reasoning_effort", "user", "metadata",
    "fallback_models", "models", "web_search_options",
    # Forwarded where the provider takes them, dropped when neutral, else refused (chat_arguments).
    "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "logit_bias", "verbosity", "modalities",
    "audio", "prediction", "functions", "function_call", "moderation",
}
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


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
    legacy_calls: dict[str, str] = {}  # the deprecated function_call: a function's name -> its last call's id
    for index, raw in enumerate(value):
        where = f"messages[{index}]"
        expect(raw, dict, where, "an object with 'role' and 'content'")
        role = raw.get("role")
        if role == "function":
            content = decode_content(raw.get("content"), f"{where}.content")
            messages.append(function_result(raw, where, legacy_calls, content))
            continue
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
            if raw.get("function_call") is not None:
                message.tool_calls.append(legacy_call(raw["function_call"], where, index, legacy_calls))
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
    refuse_unservable(payload, model, ("moderation",))
    if "messages" not in payload:
        raise bad_request("'messages' is required.", param="messages", code="missing_required_parameter")
    stream, include_usage = decode_streaming(payload)
    n = positive_int(payload, "n")
    if n not in (None, 1):
        raise bad_request("'n' must be 1: the gateway returns one choice per request.", param="n")
    max_completion = positive_int(payload, "max_completion_tokens")
    max_tokens = positive_int(payload, "max_tokens")
    seed = payload.get("seed")
    if seed is not None:
        expect(seed, int, "seed", "an integer")
    tools, tool_choice, web_search = decode_tools(payload)
    gateway_tools = decode_gateway_tools(payload.get("tools"))
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
    return ChatRequest(
        model=model,
        messages=decode_messages(payload["messages"]),
        stream=stream,
        include_usage=include_usage,
        max_output_tokens=max_completion or max_tokens,
        temperature=number_in(payload, "temperature", 0, 2),
        top_p=number_in(payload, "top_p", 0, 1),
        stop=decode_stop(payload.get("stop")),
        seed=seed,
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
        reasoning_effort=effort,
        user=user,
        metadata=decode_metadata(payload.get("metadata")),
        fallback_models=decode_fallbacks(payload, model),
        web_search=web_search,
        gateway_tools=gateway_tools,
        legacy_functions=payload.get("functions") is not None or payload.get("function_call") is not None,
        **decode_sampling(payload),
    )


def decode_streaming(payload: dict[str, Any]) -> tuple[bool, bool]:
    """``stream``, and whether the client asked for the usage chunk."""
    stream = payload.get("stream") or False
    expect(stream, bool, "stream", "true or false")
    stream_options = payload.get("stream_options")
    if stream_options is not None:
        expect(stream_options, dict, "stream_options", "an object")
        if not stream:
            raise bad_request("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
    include_usage = (stream_options or {}).get("include_usage", False)
    expect(include_usage, bool, "stream_options.include_usage", "true or false")
    return stream, include_usage


def decode_stop(stop: Any) -> list[str]:
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None:
        expect(stop, list, "stop", "a string or a list of up to 4 strings")
        if len(stop) > 4 or not all(isinstance(item, str) for item in stop):
            raise bad_request("'stop' must be a string or a list of up to 4 strings.", param="stop")
    return stop or []


def decode_tools(payload: dict[str, Any]) -> tuple[list[dict] | None, str | dict | None, WebSearchOptions | None]:
    """Function tools (or the deprecated functions), the tool choice, and the web search asked
    for (``web_search_options`` or a web_search tool, which the gateway runs)."""
    legacy_tools, legacy_choice = decode_legacy_functions(payload)
    tools = payload.get("tools")
    web_search = decode_web_search_options(payload.get("web_search_options"))
    if tools is not None:
        expect(tools, list, "tools", "a list of function tools")
        for index, tool in enumerate(tools):
            expect(tool, dict, f"tools[{index}]", "an object")
            if tool.get("type") in WEB_SEARCH_TOOLS:
                web_search = web_search or decode_web_search_tool(tool, f"tools[{index}]")
            elif (tool.get("type") != "function" or not isinstance(tool.get("function"), dict)) and not is_gateway_tool(
                    tool):
                raise bad_request(f"'tools[{index}]' must be {{'type': 'function', 'function': {{...}}}}, "
                                  "{'type': 'web_search'}, {'type': 'web_fetch'} or {'type': 'code_interpreter'}.",
                                  param=f"tools[{index}]")
        tools = [tool for tool in tools if tool.get("type") == "function"] or None
    tool_choice = payload.get("tool_choice")
    if tool_choice is not None and not (tool_choice in ("none", "auto", "required") or isinstance(tool_choice, dict)):
        raise bad_request("'tool_choice' must be 'none', 'auto', 'required' or {'type': 'function', ...}.",
                          param="tool_choice")
    return tools or legacy_tools, tool_choice if tool_choice is not None else legacy_choice, web_search


def decode_gateway_tools(tools: Any) -> tuple[str, ...]:
    """The gateway's own tools among ``tools`` (checked a list of objects by decode_tools), each once."""
    names = [decode_gateway_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools or ())
             if is_gateway_tool(tool)]
    return tuple(dict.fromkeys(names))


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
