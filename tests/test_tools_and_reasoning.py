"""Tool calls and reasoning text pass through the OpenAI-compatible adapter unchanged."""

import json

from tests.fakes.openai_upstream import Reply

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]


def test_tool_call_comes_back_and_tools_reach_the_upstream(client, fake_openai):
    fake_openai.enqueue(Reply(tool_call=("get_weather", '{"city": "Paris"}')))
    completion = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS,
        tool_choice="auto",
    )
    call = completion.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("call_1", "get_weather",
                                                                                    {"city": "Paris"})
    assert completion.choices[0].finish_reason == "tool_calls"
    sent = fake_openai.requests[-1]["body"]
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "auto"


def test_streamed_tool_call_arguments_arrive_in_fragments_with_their_index(client, fake_openai):
    fake_openai.enqueue(Reply(tool_call=("get_weather", '{"city": "Paris"}')))
    chunks = list(client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, stream=True,
        stream_options={"include_usage": True},
    ))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == "call_1" and deltas[0].function.name == "get_weather"
    assert all(d.index == 0 for d in deltas)
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None


def test_tool_results_go_back_to_the_upstream_in_the_next_turn(client, fake_openai):
    client.chat.completions.create(model="openai/gpt-4o-mini", tools=TOOLS, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
    ])
    messages = fake_openai.requests[-1]["body"]["messages"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2] == {"role": "tool", "content": "18C and sunny", "tool_call_id": "call_1"}


def test_reasoning_content_is_passed_on_streamed_and_not(client, fake_openai):
    fake_openai.enqueue(Reply(text="42", reasoning="think hard"), Reply(text="42", reasoning="think hard"))
    completion = client.chat.completions.create(model="openai/gpt-4o-mini",
                                                messages=[{"role": "user", "content": "answer?"}])
    assert completion.choices[0].message.model_extra["reasoning_content"] == "think hard"
    chunks = list(client.chat.completions.create(model="openai/gpt-4o-mini", stream=True,
                                                 messages=[{"role": "user", "content": "answer?"}]))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks)
    assert reasoning == "think hard"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "42"
