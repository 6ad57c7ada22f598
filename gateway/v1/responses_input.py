"""The input items of POST /v1/responses: decoded into stored items, and any conversation's items
(decoded or stored ones) into canonical messages (WIRE_FORMATS.md section 2).

    input (a string)                  -> one user message
    message items                     -> messages: input_text / output_text / refusal -> text,
                                         input_image (an https or data: URL) -> image parts
    function_call items               -> the assistant turn's tool_calls (consecutive items, and the
                                         assistant message before them, are one turn)
    function_call_output items        -> tool messages (call_id -> tool_call_id)
    reasoning items                   -> the next assistant turn's reasoning (its summary text) and
                                         reasoning_signature (its encrypted_content)
    web_search_call, code_interpreter_call items   -> nothing: the gateway's earlier searches, pages read
                                         and snippets run, kept as items, not read back

Decisions:
- Refused with a 400 that names them: input_file parts and file_id images.
- item_reference items are kept as such here; the view replaces each by the stored output item
  it names (gateway.v1.responses_items), or refuses it with a 400.
- Every input item gets an id (the client's, or a new one), as GET .../input_items lists them.
"""

import json
from typing import Any

from gateway.v1.errors import bad_request
from gateway.v1.json_body import expect
from gateway.v1.responses_output import message_item, new_id, output_text
from gateway.v1.responses_tools import qualified_name
from providers.types import ContentPart, ImagePart, Message, TextPart, ToolCall

MESSAGE_ROLES = ("user", "system", "developer", "assistant")
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning", "web_search_call",
              "code_interpreter_call", "item_reference")
MAX_ID_CHARS = 64


def decode_input(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [message_item("user", [{"type": "input_text", "text": value}])]
    expect(value, list, "input", "a string or a list of input items")
    if not value:
        raise bad_request("'input' must contain at least one item.", param="input")
    return [decode_item(raw, f"input[{index}]") for index, raw in enumerate(value)]


def item_id(raw: dict, prefix: str) -> str:
    given = raw.get("id")
    return given if isinstance(given, str) and 0 < len(given) <= MAX_ID_CHARS else new_id(prefix)


def decode_item(raw: Any, where: str) -> dict[str, Any]:
    expect(raw, dict, where, "an input item object")
    kind = raw.get("type", "message" if "role" in raw else None)
    if kind == "message":
        role = raw.get("role")
        if role not in MESSAGE_ROLES:
            raise bad_request(f"'{where}.role' must be one of {', '.join(MESSAGE_ROLES)}, not {json.dumps(role)}.",
                              param=f"{where}.role")
        return message_item(role, decode_parts(raw.get("content"), f"{where}.content", role=role),
                            id=item_id(raw, "msg"))
    if kind == "function_call":
        item = {"type": "function_call", "id": item_id(raw, "fc"),
                "call_id": expect(raw.get("call_id"), str, f"{where}.call_id", "a string"),
                "name": expect(raw.get("name"), str, f"{where}.name", "a string"),
                "arguments": expect(raw.get("arguments"), str, f"{where}.arguments", "a JSON string"),
                "status": "completed"}
        if raw.get("namespace") is not None:  # a namespace tool's call (responses_tools), as answered
            item["namespace"] = expect(raw["namespace"], str, f"{where}.namespace", "a string")
        return item
    if kind == "function_call_output":
        output = raw.get("output")
        if not isinstance(output, str):
            output = decode_parts(output, f"{where}.output", role="tool")
        return {"type": "function_call_output", "id": item_id(raw, "fco"),
                "call_id": expect(raw.get("call_id"), str, f"{where}.call_id", "a string"),
                "output": output, "status": "completed"}
    if kind == "reasoning":
        return decode_reasoning_item(raw, where)
    if kind == "web_search_call":  # an earlier search, sent back with the output it came in: kept, not read
        action = raw.get("action")
        return {"type": "web_search_call", "id": item_id(raw, "ws"), "status": "completed",
                "action": action if isinstance(action, dict) else {"type": "search"}}
    if kind == "code_interpreter_call":  # an earlier run of the gateway's code_interpreter: kept, not read
        code = raw.get("code")
        return {"type": "code_interpreter_call", "id": item_id(raw, "ci"), "status": "completed",
                "code": code if isinstance(code, str) else None, "container_id": "cntr_gateway", "outputs": None}
    if kind == "item_reference":  # resolved against the tenant's stored items (gateway.v1.responses_items)
        return {"type": "item_reference", "id": expect(raw.get("id"), str, f"{where}.id", "a stored item's id")}
    raise bad_request(f"'{where}.type' must be one of {', '.join(ITEM_TYPES)}, not {json.dumps(kind)}.",
                      param=f"{where}.type")


def decode_parts(value: Any, where: str, *, role: str) -> list[dict[str, Any]]:
    """Content parts as stored: input_text / input_image for the client's roles, output_text /
    refusal for the assistant."""
    if isinstance(value, str):
        return [output_text(value) if role == "assistant" else {"type": "input_text", "text": value}]
    expect(value, list, where, "a string or a list of content parts")
    parts = []
    for index, part in enumerate(value):
        at = f"{where}[{index}]"
        expect(part, dict, at, "a content part object")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            text = expect(part.get("text"), str, f"{at}.text", "a string")
            parts.append(output_text(text) if role == "assistant" else {"type": "input_text", "text": text})
        elif kind == "refusal" and role == "assistant":
            parts.append({"type": "refusal", "refusal": expect(part.get("refusal"), str, f"{at}.refusal", "a string")})
        elif kind == "input_image" and role != "assistant":
            parts.append(decode_image(part, at))
        elif kind == "input_file":
            raise bad_request(f"'{at}': files are not supported by the gateway; send the text, or images as "
                              "input_image.", param=f"{at}.type")
        else:
            allowed = "output_text or refusal" if role == "assistant" else "input_text or input_image"
            raise bad_request(f"'{at}.type' must be {allowed}, not {json.dumps(kind)}.", param=f"{at}.type")
    return parts


def decode_image(part: dict, where: str) -> dict[str, Any]:
    url = part.get("image_url")
    if url is None and part.get("file_id") is not None:
        raise bad_request(f"'{where}.file_id': uploaded files are not supported by the gateway; send image_url "
                          "(an https URL or a data:image/... URL).", param=f"{where}.file_id")
    expect(url, str, f"{where}.image_url", "an https URL or a data:image/... URL")
    if not url.startswith(("https://", "http://", "data:image/")):
        raise bad_request(f"'{where}.image_url' must be an http(s) URL or a data:image/... URL.",
                          param=f"{where}.image_url")
    detail = part.get("detail") or "auto"
    expect(detail, str, f"{where}.detail", "'low', 'high' or 'auto'")
    return {"type": "input_image", "image_url": url, "detail": detail}


def decode_reasoning_item(raw: dict, where: str) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning", "id": item_id(raw, "rs"), "summary": []}
    for name, part_type in (("summary", "summary_text"), ("content", "reasoning_text")):
        parts = raw.get(name) or []
        expect(parts, list, f"{where}.{name}", "a list")
        texts = [expect(part.get("text") if isinstance(part, dict) else None, str, f"{where}.{name}[{index}].text",
                        "a string") for index, part in enumerate(parts)]
        if texts or name == "summary":
            item[name] = [{"type": part_type, "text": text} for text in texts]
    if raw.get("encrypted_content") is not None:
        item["encrypted_content"] = expect(raw["encrypted_content"], str, f"{where}.encrypted_content", "a string")
    return item


# --- items -> canonical messages --------------------------------------------------------------

def conversation(instructions: str | None, items: list[dict[str, Any]]) -> list[Message]:
    """The canonical messages of a conversation's items (decoded or stored ones)."""
    messages = [Message(role="system", content=instructions)] if instructions else []
    turn: Message | None = None  # the assistant turn being put together
    reasoning: dict[str, Any] | None = None  # a reasoning item waiting for its turn
    for item in items:
        kind = item["type"]
        if kind == "function_call" or (kind == "message" and item["role"] == "assistant"):
            if turn is None:
                turn = Message(role="assistant", content=None)
                if reasoning is not None:
                    texts = reasoning.get("content") or reasoning["summary"]
                    turn.reasoning = "".join(part["text"] for part in texts) or None
                    turn.reasoning_signature = reasoning.get("encrypted_content")
                    reasoning = None
                messages.append(turn)
            if kind == "message":
                turn.content = (turn.content or "") + "".join(
                    part.get("text") or part.get("refusal") or "" for part in item["content"])
            else:
                turn.tool_calls.append(ToolCall(id=item["call_id"], name=qualified_name(item.get("namespace"), item["name"]),
                                                arguments=item["arguments"]))
        elif kind == "reasoning":
            reasoning, turn = item, None
        elif kind == "function_call_output":
            messages.append(Message(role="tool", content=message_content(item["output"]), tool_call_id=item["call_id"]))
            turn = None
        elif kind == "message":
            messages.append(Message(role=item["role"], content=message_content(item["content"])))
            turn = None
        # Other stored output (images the model drew) carries nothing a model reads back.
    return messages


def message_content(parts: str | list[dict[str, Any]]) -> str | list[ContentPart]:
    if isinstance(parts, str):
        return parts
    content: list[ContentPart] = [
        ImagePart(url=part["image_url"], detail=part["detail"]) if part["type"] == "input_image"
        else TextPart(part["text"]) for part in parts
    ]
    if len(content) == 1 and isinstance(content[0], TextPart):
        return content[0].text
    return content
