"""Claude's extended thinking through the gateway: reasoning_effort turns it on, thoughts come back
signed, and replayed turns give Anthropic its signed thinking blocks back in their places."""

import json

import openai
import pytest

from tests.fakes.anthropic_upstream import (
    SIGNATURE,
    Reply,
    redacted_block,
    text_block,
    thinking_block,
    tool_block,
)
from tests.test_provider_anthropic import MODEL, TOOLS, ask, stream_of


def streamed_message(chunks) -> dict:
    """A streamed answer put together as the client sends it back: text, reasoning, signature, calls."""
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    extras = [d.model_extra or {} for d in deltas]
    calls: dict[int, dict] = {}
    for call in (call for d in deltas for call in d.tool_calls or ()):
        entry = calls.setdefault(call.index, {"id": call.id, "type": "function",
                                              "function": {"name": call.function.name, "arguments": ""}})
        entry["function"]["arguments"] += call.function.arguments or ""
    # One piece per thinking block, as it ends; the answer's signature is the pieces joined.
    signature = "".join(e.get("reasoning_signature") or "" for e in extras)
    message = {"role": "assistant", "content": "".join(d.content or "" for d in deltas) or None,
               "reasoning_content": "".join(e.get("reasoning_content") or "" for e in extras)}
    return {**message, **({"reasoning_signature": signature} if signature else {}),
            **({"tool_calls": list(calls.values())} if calls else {})}


def replay(client, claude, assistant: dict) -> list[dict]:
    """Send an answer back in the next turn; the content blocks of the assistant turn Anthropic got."""
    follow = ([{"role": "tool", "tool_call_id": call["id"], "content": "18C"} for call in assistant["tool_calls"]]
              if assistant.get("tool_calls") else [{"role": "user", "content": "Thanks"}])
    client.chat.completions.create(model=MODEL, reasoning_effort="medium", tools=TOOLS, messages=[
        {"role": "user", "content": "weather?"}, assistant, *follow])
    return claude.bodies[-1]["messages"][1]["content"]


def test_reasoning_effort_turns_on_thinking_and_the_thought_comes_back_signed(client, claude):
    claude.enqueue(Reply(text="42", thinking="Six times seven.", usage={
        "input_tokens": 20, "output_tokens": 300, "output_tokens_details": {"thinking_tokens": 250}}))
    completion = ask(client, "answer?", reasoning_effort="high")
    message = completion.choices[0].message
    assert message.content == "42"
    assert message.model_extra["reasoning_content"] == "Six times seven."
    assert completion.usage.completion_tokens_details.reasoning_tokens == 250
    body = claude.bodies[-1]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert body["max_tokens"] == 16384 + 4096  # room for the answer beside the thinking
    assert replay(client, claude, message.model_dump(exclude_none=True)) == [
        {"type": "thinking", "thinking": "Six times seven.", "signature": SIGNATURE}, {"type": "text", "text": "42"}]


def test_a_small_max_tokens_caps_thinking_and_answer_together(client, claude):
    ask(client, "answer?", reasoning_effort="high", max_tokens=6000)
    assert claude.bodies[-1]["max_tokens"] == 6000
    assert claude.bodies[-1]["thinking"] == {"type": "enabled", "budget_tokens": 3000}
    ask(client, "answer?", reasoning_effort="low", max_tokens=500)
    assert claude.bodies[-1]["max_tokens"] == 2048  # raised: Anthropic's budget floor is 1024
    assert claude.bodies[-1]["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def test_streamed_thinking_arrives_as_reasoning_content_with_its_signature(client, claude):
    claude.enqueue(Reply(text="42", thinking="Six times seven.", usage={
        "input_tokens": 20, "output_tokens": 300, "output_tokens_details": {"thinking_tokens": 250}}))
    chunks = stream_of(client, messages=[{"role": "user", "content": "answer?"}], reasoning_effort="medium")
    message = streamed_message(chunks)
    assert (message["reasoning_content"], message["content"]) == ("Six times seven.", "42")
    # The signature as soon as Anthropic sends it: after the thinking it signs, before the text.
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    order = [("signature" if (d.model_extra or {}).get("reasoning_signature") else
              "thinking" if (d.model_extra or {}).get("reasoning_content") else "text" if d.content else None)
             for d in deltas]
    assert [kind for kind in order if kind] == ["thinking"] * 3 + ["signature", "text"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    # message_start carried output_tokens 1; message_delta the final count and its thinking share.
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.completion_tokens_details.reasoning_tokens) == (
        20, 300, 250)
    assert replay(client, claude, message) == [
        {"type": "thinking", "thinking": "Six times seven.", "signature": SIGNATURE}, {"type": "text", "text": "42"}]


INTERLEAVED = [thinking_block("First the city.", "sig-one"), redacted_block("EmwKAhgBEgy3va"),
               text_block("Checking."), thinking_block("Then the tool.", "sig-two"),
               tool_block("toolu_01", "get_weather", {"city": "Paris"})]


@pytest.mark.parametrize("streamed", [False, True])
def test_several_thinking_blocks_go_back_one_to_one_in_their_places(client, claude, streamed):
    claude.enqueue(Reply(blocks=INTERLEAVED))
    kwargs = {"messages": [{"role": "user", "content": "weather?"}], "reasoning_effort": "medium", "tools": TOOLS}
    if streamed:
        message = streamed_message(stream_of(client, **kwargs))
    else:
        message = client.chat.completions.create(model=MODEL, **kwargs).choices[0].message.model_dump(exclude_none=True)
    assert message["reasoning_content"] == "First the city.Then the tool."
    assert replay(client, claude, message) == INTERLEAVED


def test_thinking_changed_from_what_was_signed_is_refused_upstream(client, claude):
    claude.enqueue(Reply(text="42", thinking="Six times seven."))
    ask(client, "answer?", reasoning_effort="medium")
    changed = {"role": "assistant", "content": "42", "reasoning_content": "Seven times six.",
               "reasoning_signature": SIGNATURE}
    with pytest.raises(openai.BadRequestError, match="Invalid `signature` in `thinking` block"):
        replay(client, claude, changed)


@pytest.mark.parametrize("signature", [
    json.dumps({"gemini": [{"call": "toolu_01", "thoughtSignature": "CiQB"}]}),  # Gemini's, after a fallback
    json.dumps({"toolu_01": "CiQB"}),  # Gemini's older flat map
])
def test_a_signature_from_another_provider_is_not_sent(client, claude, signature):
    assistant = {"role": "assistant", "content": None, "reasoning_content": "Need the tool.",
                 "reasoning_signature": signature, "tool_calls": [
                     {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}
    assert replay(client, claude, assistant) == [{"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                                                  "input": {}}]


def test_a_replayed_assistant_turn_starts_with_its_signed_thinking_block(client, claude):
    client.chat.completions.create(model=MODEL, reasoning_effort="medium", tools=TOOLS, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "reasoning_content": "Need the tool.", "reasoning_signature": SIGNATURE,
         "tool_calls": [{"id": "toolu_01", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"},
    ])
    assistant = claude.bodies[-1]["messages"][1]
    assert assistant["content"][0] == {"type": "thinking", "thinking": "Need the tool.", "signature": SIGNATURE}
    assert assistant["content"][1]["type"] == "tool_use"
