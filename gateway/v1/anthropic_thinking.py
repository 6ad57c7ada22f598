"""How much a Messages request thinks and what of the conversation it keeps: ``thinking``,
``output_config`` (effort and format) and ``context_management``, Anthropic -> IR.

Decisions:
- thinking: ``enabled`` keeps its budget_tokens as thinking_budget, which a Claude model on the
  native API gets exactly, and maps it to an effort for the others (1024-4095 -> low, 4096-16383 ->
  medium, 16384 and more -> high: OpenAI's reasoning_effort; Gemini takes the budget itself).
  budget_tokens must be >= 1024 and < max_tokens, as Anthropic says (a 400 naming both).
  ``adaptive`` (Claude decides) and ``between_tools`` are output_config.effort, else medium;
  ``disabled`` sends none, whatever the effort. output_config.effort alone (low .. max) is the
  effort as given.
- context_management: the edits go to the native Anthropic API as given (with the beta they need).
  ``clear_thinking_20251015`` is also applied here, whoever serves the request: the reasoning and
  signatures of the assistant turns before the last ``keep`` thinking turns (default 1; ``"all"``
  keeps every one) are dropped, so every provider reads what Claude would (Anthropic then finds
  nothing more to clear). ``clear_tool_uses_20250919`` is left to Anthropic: other providers read
  the whole conversation, which changes no answer until it outgrows their context window (their
  context error then). Other edit types (compaction) are refused.
"""

import json
from typing import Any

from gateway.v1.errors import bad_request
from gateway.v1.openai_chat import expect, positive_int
from providers.types import MIN_THINKING_BUDGET, Message

THINKING_EFFORTS = ((16384, "high"), (4096, "medium"), (MIN_THINKING_BUDGET, "low"))
EFFORTS = ("low", "medium", "high", "xhigh", "max")
CLEAR_THINKING, CLEAR_TOOL_USES = "clear_thinking_20251015", "clear_tool_uses_20250919"


def decode_output_config(value: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The response_format and the effort output_config asks for."""
    if value is None:
        return None, None
    expect(value, dict, "output_config", "an object")
    extra = sorted(set(value) - {"effort", "format"})
    if extra:
        raise bad_request(f"output_config.{extra[0]}: Extra inputs are not permitted.",
                          param=f"output_config.{extra[0]}")
    effort = value.get("effort")
    if effort is not None and effort not in EFFORTS:
        raise bad_request(f"output_config.effort: must be one of {', '.join(EFFORTS)}.", param="output_config.effort")
    output_format = value.get("format")
    if output_format is None:
        return None, effort
    expect(output_format, dict, "output_config.format", "an object")
    if output_format.get("type") != "json_schema":
        raise bad_request("output_config.format.type: must be 'json_schema'.", param="output_config.format.type")
    schema = expect(output_format.get("schema"), dict, "output_config.format.schema", "a JSON schema object")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}, effort


def decode_thinking(value: Any, max_tokens: int, effort: str | None) -> tuple[str | None, int | None]:
    """The reasoning effort and the explicit thinking budget (module docstring)."""
    if value is None:
        return effort, None
    expect(value, dict, "thinking", "an object such as {'type': 'enabled', 'budget_tokens': 2048}")
    kind = value.get("type")
    if kind == "disabled":
        return None, None
    if kind in ("adaptive", "between_tools"):
        return effort or "medium", None
    if kind != "enabled":
        raise bad_request("thinking.type: must be 'enabled', 'adaptive', 'between_tools' or 'disabled'.",
                          param="thinking.type")
    budget = positive_int(value, "budget_tokens")
    if budget is None or budget < MIN_THINKING_BUDGET:
        raise bad_request(f"thinking.budget_tokens: must be at least {MIN_THINKING_BUDGET}.",
                          param="thinking.budget_tokens")
    if budget >= max_tokens:
        raise bad_request(f"max_tokens: must be greater than thinking.budget_tokens (max_tokens {max_tokens}, "
                          f"thinking.budget_tokens {budget}); the budget is part of max_tokens.", param="max_tokens")
    return effort or next(level for floor, level in THINKING_EFFORTS if budget >= floor), budget


def decode_context_management(value: Any) -> list[dict[str, Any]]:
    """context_management's edits, checked as far as the gateway reads them (module docstring)."""
    if value is None:
        return []
    expect(value, dict, "context_management", "an object such as {'edits': [...]}")
    extra = sorted(set(value) - {"edits"})
    if extra:
        raise bad_request(f"context_management.{extra[0]}: Extra inputs are not permitted.",
                          param=f"context_management.{extra[0]}")
    edits = expect(value.get("edits", []), list, "context_management.edits", "a list of edits")
    for index, edit in enumerate(edits):
        where = f"context_management.edits.{index}"
        expect(edit, dict, where, "an edit object")
        if edit.get("type") not in (CLEAR_THINKING, CLEAR_TOOL_USES):
            raise bad_request(f"{where}.type: the gateway takes {CLEAR_THINKING} and {CLEAR_TOOL_USES}, not "
                              f"{json.dumps(edit.get('type'))}.", param=f"{where}.type")
        if edit["type"] == CLEAR_THINKING:
            thinking_turns_kept(edit, where)
    return edits


def thinking_turns_kept(edit: dict[str, Any], where: str) -> int | None:
    """How many of the last thinking turns a clear_thinking edit keeps; None for all of them."""
    keep = edit.get("keep", {"type": "thinking_turns", "value": 1})
    if keep == "all" or isinstance(keep, dict) and keep.get("type") == "all":
        return None
    expect(keep, dict, f"{where}.keep", "'all' or {'type': 'thinking_turns', 'value': N}")
    value = keep.get("value")
    if keep.get("type") != "thinking_turns" or type(value) is not int or value < 0:
        raise bad_request(f"{where}.keep: must be 'all' or {{'type': 'thinking_turns', 'value': N}}, N >= 0.",
                          param=f"{where}.keep")
    return value


def clear_thinking(messages: list[Message], edits: list[dict[str, Any]]) -> None:
    """Applies clear_thinking edits: the reasoning of assistant turns before the kept ones goes."""
    for edit in edits:
        kept = thinking_turns_kept(edit, "context_management") if edit["type"] == CLEAR_THINKING else None
        if kept is None:
            continue
        thinking = [m for m in messages if m.role == "assistant" and (m.reasoning or m.reasoning_signature)]
        for message in thinking[:max(0, len(thinking) - kept)]:
            message.reasoning = message.reasoning_signature = None
