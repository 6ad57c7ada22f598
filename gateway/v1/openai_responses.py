"""OpenAI's Responses API as a client protocol: decode a request, encode the response object
(WIRE_FORMATS.md section 2). No provider knowledge: the canonical request is all the router sees,
so every chat model of the catalog answers it.

    decode -> ResponsesCall         the request's arguments (here); its input items and their
                                    canonical messages: gateway.v1.responses_input
    encode_result, response_object  the response object (here); its output items:
                                    gateway.v1.responses_output
    the stream of a response        gateway.v1.openai_responses_stream

In (Responses -> IR):
    input (a string or items)         -> messages (gateway.v1.responses_input)
    instructions                      -> a system message first; never carried to the next turn
    tools, tool_choice                -> gateway.v1.responses_tools: function tools, namespaces flattened,
                                         web_search run by the gateway (gateway.v1.web_search), its own
                                         code_interpreter and web_fetch (gateway.serving.tool_loop), tools
                                         it cannot run dropped unless tool_choice forces one
    text.format json_schema / json_object -> response_format; text.verbosity -> verbosity
    reasoning.effort, max_output_tokens, temperature, top_p, user (or safety_identifier) -> the same
    include message.output_text.logprobs (+ top_logprobs) -> logprobs, answered in output_text.logprobs
    max_tool_calls                    -> 0 rules out the gateway's built-in tool calls (search, web_fetch,
                                         code_interpreter)
Out (IR -> Responses): the response object around its output items (gateway.v1.responses_output).
A finish on length or content_filter is status ``incomplete`` with incomplete_details.reason
max_output_tokens / content_filter.

Decisions:
- Refused with a 400 that names them: unknown fields, background, conversation, truncation
  "auto" (the gateway never drops context silently), prompt (a stored prompt's id); a verbosity
  or logprobs the model cannot honour (providers.arguments).
- Accepted and not forwarded, changing no answer: include (encrypted reasoning is always
  included), parallel_tool_calls (echoed), service_tier, prompt_cache_key, prompt_cache_retention,
  stream_options, client_metadata (Codex's bookkeeping).
"""

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.v1.chat_arguments import decode_logprobs, decode_verbosity, refuse_unservable
from gateway.v1.errors import GatewayError, bad_request
from gateway.v1.json_body import decode_metadata, decoder, expect, number_in, positive_int
from gateway.v1.openai_chat import REASONING_EFFORTS, decode_fallbacks, model_of, refuse_unknown
from gateway.v1.responses_input import conversation, decode_input
from gateway.v1.responses_output import (
    answer_items,
    function_call_item,
    image_item,
    reasoning_item,
    web_search_item,
)
from gateway.v1.responses_tools import WEB_SEARCH_TOOLS, decode_tool_choice, decode_tools
from providers.types import ChatRequest, ChatResult, Usage, WebSearchOptions

SUPPORTED = {
    "model", "input", "instructions", "previous_response_id", "store", "stream", "stream_options",
    "max_output_tokens", "temperature", "top_p", "tools", "tool_choice", "parallel_tool_calls", "text",
    "reasoning", "metadata", "user", "safety_identifier", "truncation", "background", "conversation",
    "fallback_models", "models", "include", "top_logprobs", "max_tool_calls", "prompt", "moderation",
    "context_management",
}
# Bookkeeping clients send (Codex's client_metadata, prompt caching hints, OpenAI account programs,
# image context compression): never a reason to refuse, and nothing a provider computes from.
IGNORED = {"service_tier", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "client_metadata",
           "access_programs", "image"}
LOGPROBS_INCLUDE = "message.output_text.logprobs"
SUMMARY_MODES = ("auto", "concise", "detailed")
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(slots=True)
class ResponsesCall:
    """A decoded POST /v1/responses: the canonical request (this request's own input; the view
    adds the earlier turns of previous_response_id) and what the response object repeats."""

    chat: ChatRequest
    input_items: list[dict[str, Any]]  # this request's input, as items with ids
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    echo: dict[str, Any] = field(default_factory=dict)  # tools, tool_choice, text, reasoning, metadata, ...
    # A flattened namespace tool's name -> (namespace, its own name), for the calls the model makes.
    tool_names: dict[str, tuple[str, str]] = field(default_factory=dict)


# --- request ----------------------------------------------------------------------------------

@decoder
def decode(payload: dict[str, Any]) -> ResponsesCall:
    refuse_unknown(payload, SUPPORTED, IGNORED)
    model = model_of(payload)
    if payload.get("input") is None:
        raise bad_request("'input' is required: a string, or a list of input items.", param="input",
                          code="missing_required_parameter")
    refuse_unsupported(payload)
    refuse_unservable(payload, model, ("prompt", "moderation", "context_management"))
    stream = decode_stream(payload)
    instructions = optional_string(payload, "instructions")
    previous = optional_string(payload, "previous_response_id")
    user = optional_string(payload, "user") or optional_string(payload, "safety_identifier")
    tools = decode_tools(payload.get("tools"))
    tool_choice, tool_choice_echo = decode_tool_choice(payload.get("tool_choice"), tools)
    max_tool_calls = decode_max_tool_calls(payload.get("max_tool_calls"))
    response_format, text_echo, verbosity = decode_text(payload.get("text"))
    effort, reasoning_echo = decode_reasoning(payload.get("reasoning"))
    logprobs, top_logprobs = decode_logprobs(LOGPROBS_INCLUDE in decode_include(payload.get("include")),
                                             payload.get("top_logprobs"), top_needs_logprobs=False)
    items = decode_input(payload["input"])
    chat = ChatRequest(
        model=model,
        messages=conversation(instructions, items),
        stream=stream,
        max_output_tokens=positive_int(payload, "max_output_tokens"),
        temperature=number_in(payload, "temperature", 0, 2),
        top_p=number_in(payload, "top_p", 0, 1),
        tools=tools.functions or None,
        tool_choice=tool_choice,
        response_format=response_format,
        reasoning_effort=effort,
        user=user,
        metadata=decode_metadata(payload.get("metadata")),
        fallback_models=decode_fallbacks(payload, model),
        # The gateway's built-in tool calls: max_tool_calls 0 rules them out.
        web_search=offered_search(tools.web_search, tool_choice_echo) if max_tool_calls != 0 else None,
        gateway_tools=tuple(tools.gateway) if max_tool_calls != 0 else (),
        max_tool_calls=max_tool_calls,
        verbosity=verbosity,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )
    echo = {
        "max_tool_calls": max_tool_calls,
        "metadata": chat.metadata,
        "parallel_tool_calls": flag(payload, "parallel_tool_calls", True),
        "reasoning": reasoning_echo,
        "temperature": chat.temperature,
        "text": text_echo,
        "tool_choice": tool_choice_echo,
        "tools": tools.echo,
        "top_logprobs": payload.get("top_logprobs"),
        "top_p": chat.top_p,
        "truncation": "disabled",
    }
    return ResponsesCall(chat=chat, input_items=items, instructions=instructions, previous_response_id=previous,
                         store=flag(payload, "store", True), echo=echo, tool_names=tools.namespaced)


def offered_search(search: WebSearchOptions | None, tool_choice: Any) -> WebSearchOptions | None:
    """A web_search tool is only offered (optional) unless tool_choice forces it."""
    forced = isinstance(tool_choice, dict) and tool_choice.get("type") in WEB_SEARCH_TOOLS
    return search if search is None or forced else dataclasses.replace(search, optional=True)


def decode_stream(payload: dict) -> bool:
    stream = flag(payload, "stream", False)
    if payload.get("stream_options") is not None:
        expect(payload["stream_options"], dict, "stream_options", "an object")
        if not stream:
            raise bad_request("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
    return stream


def decode_include(value: Any) -> list[str]:
    """What the client asks the response to include: the logprobs are read; encrypted reasoning is
    always included; the rest names hosted tools' output the gateway never makes."""
    if value is None:
        return []
    expect(value, list, "include", "a list of strings")
    return [item for item in value if isinstance(item, str)]


def decode_max_tool_calls(value: Any) -> int | None:
    if value is None:
        return None
    expect(value, int, "max_tool_calls", "an integer")
    if value < 0:
        raise bad_request(f"'max_tool_calls' must be at least 0, not {value}.", param="max_tool_calls")
    return value


def continue_from(call: ResponsesCall, earlier_items: list[dict[str, Any]]) -> None:
    """Put the earlier turns (a stored response's input and output items) before this input."""
    call.chat.messages = conversation(call.instructions, earlier_items + call.input_items)


def refuse_unsupported(payload: dict) -> None:
    if payload.get("conversation") is not None:
        raise bad_request("'conversation' objects are not supported by the gateway; continue a stored response "
                          "with previous_response_id instead.", param="conversation")
    if payload.get("background"):
        raise bad_request("'background' responses are not supported by the gateway; send the request without "
                          "it (stream it to see progress).", param="background")
    if payload.get("truncation") not in (None, "disabled"):
        raise bad_request("'truncation' must be 'disabled': the gateway never drops part of a conversation on "
                          "its own. Start a shorter conversation instead.", param="truncation")


def flag(payload: dict, name: str, default: bool) -> bool:
    value = payload.get(name)
    return default if value is None else expect(value, bool, name, "true or false")


def optional_string(payload: dict, name: str) -> str | None:
    value = payload.get(name)
    return None if value is None else expect(value, str, name, "a string")


def decode_text(value: Any) -> tuple[dict[str, Any] | None, dict[str, Any], str | None]:
    """The canonical response_format, the response object's ``text``, and the verbosity (None
    for "medium", the default: chat_arguments.decode_verbosity)."""
    if value is None:
        return None, {"format": {"type": "text"}}, None
    expect(value, dict, "text", "an object such as {'format': {'type': 'json_schema', ...}}")
    extra = sorted(set(value) - {"format", "verbosity"})
    if extra:
        raise bad_request(f"Unrecognized argument 'text.{extra[0]}'.", param=f"text.{extra[0]}")
    verbosity = decode_verbosity(value.get("verbosity"), "text.verbosity")
    response_format, echo = decode_text_format(value.get("format") or {"type": "text"})
    return response_format, {**echo, **({"verbosity": value["verbosity"]} if value.get("verbosity") else {})}, verbosity


def decode_text_format(fmt: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    expect(fmt, dict, "text.format", "an object")
    kind = fmt.get("type")
    if kind == "text":
        return None, {"format": {"type": "text"}}
    if kind == "json_object":
        return {"type": "json_object"}, {"format": {"type": "json_object"}}
    if kind != "json_schema":
        raise bad_request("'text.format.type' must be 'text', 'json_object' or 'json_schema'.",
                          param="text.format.type")
    schema: dict[str, Any] = {
        "name": expect(fmt.get("name"), str, "text.format.name", "a name for the schema"),
        "schema": expect(fmt.get("schema"), dict, "text.format.schema", "a JSON schema object"),
    }
    if fmt.get("strict") is not None:
        schema["strict"] = expect(fmt["strict"], bool, "text.format.strict", "true or false")
    if fmt.get("description") is not None:
        schema["description"] = expect(fmt["description"], str, "text.format.description", "a string")
    return {"type": "json_schema", "json_schema": schema}, {"format": {"type": "json_schema", **schema}}


def decode_reasoning(value: Any) -> tuple[str | None, dict[str, Any]]:
    if value is None:
        return None, {"effort": None, "summary": None}
    expect(value, dict, "reasoning", "an object such as {'effort': 'medium'}")
    effort = value.get("effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise bad_request(f"'reasoning.effort' must be one of {', '.join(sorted(REASONING_EFFORTS))}.",
                          param="reasoning.effort")
    summary = value.get("summary", value.get("generate_summary"))
    if summary is not None and summary not in SUMMARY_MODES:
        raise bad_request(f"'reasoning.summary' must be one of {', '.join(SUMMARY_MODES)}.", param="reasoning.summary")
    return effort, {"effort": effort, "summary": summary}


# --- response ---------------------------------------------------------------------------------

def encode_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def outcome(finish_reason: str) -> tuple[str, dict[str, str] | None]:
    """The response status and incomplete_details of an answer that finished so."""
    reason = INCOMPLETE_REASONS.get(finish_reason)
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_object(call: ResponsesCall, *, response_id: str, model: str, created_at: int, status: str,
                    output: list[dict[str, Any]], usage: Usage | None = None, error: dict | None = None,
                    incomplete_details: dict | None = None) -> dict[str, Any]:
    finished = status in ("completed", "incomplete")
    return {
        "id": response_id, "object": "response", "created_at": created_at, "status": status, "background": False,
        "completed_at": int(time.time()) if finished else None, "error": error,
        "incomplete_details": incomplete_details, "instructions": call.instructions,
        "max_output_tokens": call.chat.max_output_tokens, "model": model, "output": output,
        "previous_response_id": call.previous_response_id, "store": call.store,
        "usage": encode_usage(usage) if usage is not None else None, "user": call.chat.user, **call.echo,
    }


def encode_result(call: ResponsesCall, result: ChatResult, *, response_id: str, model: str,
                  created_at: int) -> dict[str, Any]:
    status, incomplete = outcome(result.finish_reason)
    output: list[dict[str, Any]] = [web_search_item(search) for search in call.chat.web_search_calls]
    if result.reasoning or result.reasoning_signature:
        output.append(reasoning_item(result.reasoning, result.reasoning_signature))
    output += answer_items(result.content or "", result.annotations, call.chat.tool_runs, status=status,
                           logprobs=result.logprobs, sources=result.citations,
                           whole=not (result.tool_calls or result.images))
    output += [image_item(url) for url in result.images]
    output += [function_call_item(c.id, c.name, c.arguments, status, call.tool_names) for c in result.tool_calls]
    return response_object(call, response_id=response_id, model=model, created_at=created_at, status=status,
                           output=output, usage=result.usage, incomplete_details=incomplete)


def failure_error(error: GatewayError) -> dict[str, Any]:
    """A failed response's ``error``: the SDK knows the codes rate_limit_exceeded and server_error."""
    code = "rate_limit_exceeded" if error.status == 429 else "server_error"
    return {"code": code, "message": error.message}
