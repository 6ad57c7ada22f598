"""Chat Completions arguments beyond the basics, as the decoder reads them (OpenAI's API reference):
the sampling and output arguments only some providers take, and the deprecated functions.

Every one is accepted for every model. Its neutral value (the "Arguments" table in docs/REFERENCE.md) is
dropped here, so a request carrying it is exactly the request without it; what is left is
forwarded or refused per deployment by providers.arguments, never silently dropped.

    decode_sampling(payload)            frequency_penalty, presence_penalty, logprobs, top_logprobs,
                                        logit_bias, verbosity, modalities (+ audio), prediction
    decode_legacy_functions(payload)    functions / function_call -> tools / tool_choice
    legacy_call, function_result        an assistant's function_call and a "function" message ->
                                        a tool call and its tool message, paired by a made-up id
"""

from typing import Any

from gateway.v1.errors import bad_request
from gateway.v1.json_body import expect, number_in
from providers.types import Message, ToolCall

VERBOSITIES = ("low", "medium", "high")
MAX_TOP_LOGPROBS = 20
# Arguments that ask for one of OpenAI's own services, which no deployment here runs: accepted
# when null or empty, else refused naming the model (what they ask for, what to do instead).
UNSERVABLE = {
    "prompt": "a prompt stored in OpenAI's dashboard; send its text as instructions and input instead",
    "moderation": "OpenAI's moderation of input and output; moderate before calling, or leave it out",
    "context_management": "OpenAI's server-side compaction; keep the conversation within the model's context",
}


def refuse_unservable(payload: dict[str, Any], model: str, names: tuple[str, ...]) -> None:
    for name in names:
        if payload.get(name):
            raise bad_request(f"'{model}' cannot honour '{name}' through the gateway: it asks for {UNSERVABLE[name]}.",
                              param=name, code="unsupported_argument")


def decode_sampling(payload: dict[str, Any]) -> dict[str, Any]:
    """The ChatRequest fields of these arguments; a neutral value is no field at all."""
    logprobs, top_logprobs = decode_logprobs(payload.get("logprobs"), payload.get("top_logprobs"))
    return {
        "frequency_penalty": number_in(payload, "frequency_penalty", -2, 2) or None,
        "presence_penalty": number_in(payload, "presence_penalty", -2, 2) or None,
        "logprobs": logprobs,
        "top_logprobs": top_logprobs,
        "logit_bias": decode_logit_bias(payload.get("logit_bias")),
        "verbosity": decode_verbosity(payload.get("verbosity"), "verbosity"),
        "modalities": decode_modalities(payload.get("modalities"), payload.get("audio")),
        "prediction": decode_prediction(payload.get("prediction")),
    }


def decode_logprobs(logprobs: Any, top: Any, *, top_needs_logprobs: bool = True) -> tuple[bool, int | None]:
    """``logprobs`` and ``top_logprobs``; OpenAI refuses top_logprobs without logprobs: true in chat
    completions (``top_needs_logprobs``), while the Responses API asks for logprobs by ``include``."""
    top_param = "top_logprobs"
    if logprobs is not None:
        expect(logprobs, bool, "logprobs", "true or false")
    if top is not None:
        expect(top, int, top_param, f"an integer from 0 to {MAX_TOP_LOGPROBS}")
        if not 0 <= top <= MAX_TOP_LOGPROBS:
            raise bad_request(f"'{top_param}' must be between 0 and {MAX_TOP_LOGPROBS}, not {top}.", param=top_param)
    if top and not logprobs and top_needs_logprobs:
        raise bad_request(f"'{top_param}' needs 'logprobs': true.", param=top_param)
    return bool(logprobs), (top or None) if logprobs else None


def decode_logit_bias(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    expect(value, dict, "logit_bias", "an object mapping token ids to a bias from -100 to 100")
    bias = {}
    for token, weight in value.items():
        where = f"logit_bias.{token[:20]}"
        expect(weight, (int, float), where, "a number from -100 to 100")
        if not token.isdigit() or not -100 <= weight <= 100:
            raise bad_request(f"'{where}': keys are token ids (digits) and biases are from -100 to 100.", param=where)
        if weight:
            bias[token] = weight
    return bias or None


def decode_verbosity(value: Any, param: str) -> str | None:
    """"medium", every model's default, is neutral."""
    if value is not None and value not in VERBOSITIES:
        raise bad_request(f"'{param}' must be one of {', '.join(VERBOSITIES)}.", param=param)
    return None if value == "medium" else value


def decode_modalities(value: Any, audio: Any) -> list[str] | None:
    """Text alone is neutral. ``audio`` (the voice and format of audio output) only matters with
    the "audio" modality, which the check refuses where it cannot be honoured."""
    if audio is not None:
        expect(audio, dict, "audio", "an object such as {'voice': 'alloy', 'format': 'wav'}")
    if value is None:
        return None
    expect(value, list, "modalities", "a list such as ['text']")
    if not value or not all(isinstance(item, str) for item in value):
        raise bad_request("'modalities' must be a list of output types such as ['text'] or ['text', 'audio'].",
                          param="modalities")
    return list(value) if set(value) - {"text"} else None


def decode_prediction(value: Any) -> dict[str, Any] | None:
    """OpenAI's predicted output; an empty prediction predicts nothing."""
    if value is None:
        return None
    expect(value, dict, "prediction", "an object such as {'type': 'content', 'content': '...'}")
    if value.get("type") != "content":
        raise bad_request("'prediction.type' must be 'content'.", param="prediction.type")
    content = value.get("content")
    expect(content, (str, list), "prediction.content", "a string or a list of text parts")
    return value if content else None


def decode_legacy_functions(payload: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str | dict | None]:
    """``functions`` and ``function_call`` (deprecated, still sent by older clients) as the
    tools and tool_choice they are the old names of."""
    functions, function_call = payload.get("functions"), payload.get("function_call")
    if functions is not None and payload.get("tools") is not None:
        raise bad_request("Send 'tools' or the deprecated 'functions', not both.", param="functions")
    if function_call is not None and payload.get("tool_choice") is not None:
        raise bad_request("Send 'tool_choice' or the deprecated 'function_call', not both.", param="function_call")
    tools = None
    if functions is not None:
        expect(functions, list, "functions", "a list of function definitions")
        for index, function in enumerate(functions):
            expect(function, dict, f"functions[{index}]", "an object with 'name' and 'parameters'")
            expect(function.get("name"), str, f"functions[{index}].name", "a string")
        tools = [{"type": "function", "function": function} for function in functions] or None
    if function_call is None or function_call in ("none", "auto"):
        return tools, function_call
    expect(function_call, dict, "function_call", "'none', 'auto' or {'name': ...}")
    name = expect(function_call.get("name"), str, "function_call.name", "a function name")
    return tools, {"type": "function", "function": {"name": name}}


def legacy_call(value: Any, where: str, index: int, calls: dict[str, str]) -> ToolCall:
    """The ``function_call`` of the assistant message at ``index``; its made-up id (unique in the
    conversation) is noted under the function's name for the ``function`` message answering it."""
    expect(value, dict, f"{where}.function_call", "an object with 'name' and 'arguments'")
    name = expect(value.get("name"), str, f"{where}.function_call.name", "a string")
    call = ToolCall(id=f"call_fn{index}_{name}"[:64], name=name,
                    arguments=expect(value.get("arguments", ""), str, f"{where}.function_call.arguments",
                                     "a JSON string"))
    calls[name] = call.id
    return call


def function_result(raw: dict[str, Any], where: str, calls: dict[str, str], content: Any) -> Message:
    """A ``function`` message: the result of the latest call of the function it names."""
    name = expect(raw.get("name"), str, f"{where}.name", "the function's name")
    if name not in calls:
        raise bad_request(f"'{where}' answers a call of '{name}' that no earlier assistant message made.",
                          param=f"{where}.name")
    return Message(role="tool", content=content if content is not None else "", name=name,
                   tool_call_id=calls[name])
