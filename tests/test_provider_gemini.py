"""Gemini through the gateway: the openai SDK on one side, Gemini's generateContent wire on the other."""

import json
import re
from decimal import Decimal

import openai
import pytest

from tests.conftest import serve_provider_from
from tests.fakes.gemini_upstream import (
    API_KEY,
    DEFAULT_REPLY,
    FakeGemini,
    Reply,
    call_part,
    image_part,
    text_part,
    thought_part,
)
from usage.models import UsageRecord

SLUG = "gemini"
FLASH = "gemini/gemini-2.5-flash"
PRO = "gemini/gemini-2.5-pro"
PRO_3 = "gemini/gemini-3-pro-preview"
FLASH_IMAGE = "gemini/gemini-2.5-flash-image"
PRO_IMAGE = "gemini/gemini-3-pro-image-preview"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                   "properties": {"city": {"type": "string", "description": "City name"},
                                  "unit": {"type": ["string", "null"], "enum": ["C", "F"]}},
                   "required": ["city"], "additionalProperties": False}}}]
GEMINI_TOOLS = [{"functionDeclarations": [{
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "OBJECT", "required": ["city"],
                   "properties": {"city": {"type": "STRING", "description": "City name"},
                                  "unit": {"type": "STRING", "nullable": True, "enum": ["C", "F"]}}}}]}]
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER = {"role": "user", "content": "Weather in Paris?"}
GENERATED_ID = re.compile(r"call_[0-9a-f]{24}")


@pytest.fixture(scope="module")
def fake_gemini():
    fake = FakeGemini().start()
    yield fake
    fake.stop()


@pytest.fixture
def gemini(catalog, fake_gemini) -> FakeGemini:
    """Gemini enabled, pointed at the fake, with the fake's key as its credential."""
    fake_gemini.reset()
    serve_provider_from(SLUG, fake_gemini.base_url, API_KEY)
    return fake_gemini


def ask(client, content="Say hello", model=FLASH, **kwargs):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], **kwargs)


def stream_of(client, model=FLASH, **kwargs):
    return list(client.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                               **kwargs))


def extra(chunks, key):
    return [value for c in chunks if c.choices for value in [(c.choices[0].delta.model_extra or {}).get(key)] if value]


def text_of(chunks):
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def replayed(message) -> dict:
    """An answer's message as a client sends it back in the next request."""
    return message.model_dump(exclude_none=True, warnings=False)


def test_answer_comes_back_and_gemini_gets_its_own_request_shape(client, gemini):
    completion = client.chat.completions.create(
        model=FLASH, max_tokens=50, temperature=0.2, top_p=0.9, stop=["END"], seed=7,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Use English."},
                  {"role": "user", "content": "Say hello"}],
    )
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == FLASH
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (8, 5)
    sent = gemini.requests[-1]
    assert (sent["model"], sent["action"], sent["query"]) == ("gemini-2.5-flash", "generateContent", {})
    assert sent["headers"]["x-goog-api-key"] == API_KEY and "Authorization" not in sent["headers"]
    assert sent["body"] == {
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use English."}]},
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"],
                             "seed": 7},
    }


def test_streamed_answer_arrives_word_by_word_with_the_usage_chunk_last(client, gemini):
    gemini.enqueue(Reply(text="one two three four"))
    chunks = stream_of(client, messages=[{"role": "user", "content": "count"}])
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and all(c.usage is None for c in chunks[:-1])
    # Earlier chunks carry a partial usageMetadata; the last one counts.
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 4)
    sent = gemini.requests[-1]
    assert (sent["action"], sent["query"]) == ("streamGenerateContent", {"alt": "sse"})


def test_tool_call_gets_a_generated_id_and_tools_are_declared_as_gemini_schema(client, gemini):
    gemini.enqueue(Reply(parts=[call_part("get_weather", {"city": "Paris"})]))
    completion = client.chat.completions.create(model=FLASH, messages=[WEATHER], tools=TOOLS, tool_choice="required")
    message = completion.choices[0].message
    call = message.tool_calls[0]
    assert GENERATED_ID.fullmatch(call.id)
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert message.content is None and completion.choices[0].finish_reason == "tool_calls"
    body = gemini.requests[-1]["body"]
    assert body["tools"] == GEMINI_TOOLS
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_tool_call_ids_never_repeat_across_turns_and_go_back_on_call_and_response(client, gemini):
    gemini.enqueue(Reply(parts=[call_part("get_weather", {"city": "Paris"})]),
                   Reply(parts=[call_part("get_weather", {"city": "Rome"})]),
                   Reply(text="Paris 18C, Rome 24C."))
    first = client.chat.completions.create(model=FLASH, messages=[WEATHER], tools=TOOLS).choices[0].message
    history = [WEATHER, replayed(first), {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "18C"},
               {"role": "user", "content": "And Rome?"}]
    second = client.chat.completions.create(model=FLASH, messages=history, tools=TOOLS).choices[0].message
    assert first.tool_calls[0].id != second.tool_calls[0].id
    assert all(GENERATED_ID.fullmatch(m.tool_calls[0].id) for m in (first, second))
    history += [replayed(second), {"role": "tool", "tool_call_id": second.tool_calls[0].id, "content": "24C"}]
    client.chat.completions.create(model=FLASH, messages=history, tools=TOOLS)
    contents = gemini.requests[-1]["body"]["contents"]
    calls = [p["functionCall"] for c in contents for p in c["parts"] if "functionCall" in p]
    responses = [p["functionResponse"] for c in contents for p in c["parts"] if "functionResponse" in p]
    assert [c["id"] for c in calls] == [r["id"] for r in responses] == [first.tool_calls[0].id,
                                                                         second.tool_calls[0].id]


def test_geminis_own_call_id_is_kept_and_echoed_back(client, gemini):
    gemini.enqueue(Reply(parts=[call_part("get_weather", {"city": "Paris"}, id="fc-7f3a"),
                                call_part("get_weather", {"city": "Rome"})]))
    message = client.chat.completions.create(model=FLASH, messages=[WEATHER], tools=TOOLS).choices[0].message
    own, generated = [call.id for call in message.tool_calls]
    assert own == "fc-7f3a" and GENERATED_ID.fullmatch(generated)
    client.chat.completions.create(model=FLASH, tools=TOOLS, messages=[
        WEATHER, replayed(message), {"role": "tool", "tool_call_id": generated, "content": "24C"},
        {"role": "tool", "tool_call_id": own, "content": "18C"}])
    assert gemini.requests[-1]["body"]["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"id": "fc-7f3a", "name": "get_weather", "args": {"city": "Paris"}}},
                                    {"functionCall": {"id": generated, "name": "get_weather", "args": {"city": "Rome"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"id": generated, "name": "get_weather", "response": {"output": "24C"}}},
            {"functionResponse": {"id": "fc-7f3a", "name": "get_weather", "response": {"output": "18C"}}}]},
    ]


def test_schema_refs_unions_and_empty_parameters_become_what_gemini_accepts(client, gemini):
    tools = [
        {"type": "function", "function": {"name": "plan_trip", "parameters": {
            "type": "object", "$defs": {"place": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "properties": {"to": {"$ref": "#/$defs/place"}, "when": {"type": "string", "format": "date-time"},
                           "site": {"type": "string", "format": "uri"},
                           "nights": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                           "mode": {"const": "train"}}}}},
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
    ]
    ask(client, tools=tools, tool_choice={"type": "function", "function": {"name": "plan_trip"}})
    body = gemini.requests[-1]["body"]
    plan, now = body["tools"][0]["functionDeclarations"]
    assert plan["parameters"]["properties"] == {
        "to": {"type": "OBJECT", "properties": {"name": {"type": "STRING"}}},
        "when": {"type": "STRING", "format": "date-time"},
        "site": {"type": "STRING"},
        "nights": {"anyOf": [{"type": "INTEGER"}, {}]},
        "mode": {"enum": ["train"]},
    }
    assert now == {"name": "now"}
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["plan_trip"]}}


def test_streamed_tool_calls_arrive_whole_each_with_its_index(client, gemini):
    gemini.enqueue(Reply(parts=[text_part("Checking both."), call_part("get_weather", {"city": "Paris"}),
                                call_part("get_weather", {"city": "Rome"}, id="fc-rome")]))
    chunks = stream_of(client, messages=[WEATHER], tools=TOOLS)
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert [(d.index, d.function.name) for d in deltas] == [(0, "get_weather"), (1, "get_weather")]
    assert GENERATED_ID.fullmatch(deltas[0].id) and deltas[1].id == "fc-rome"
    assert [json.loads(d.function.arguments) for d in deltas] == [{"city": "Paris"}, {"city": "Rome"}]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Checking both."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage.completion_tokens == 22


def test_tool_results_go_back_as_one_user_turn_of_named_function_responses(client, gemini):
    client.chat.completions.create(model=FLASH, tools=TOOLS, messages=[
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": '{"temp": 18}'},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ])
    assert gemini.requests[-1]["body"]["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"id": "call_0", "name": "get_weather", "args": {"city": "Paris"}}},
                                    {"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Rome"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"id": "call_0", "name": "get_weather", "response": {"temp": 18}}},
            {"functionResponse": {"id": "call_1", "name": "get_weather", "response": {"output": "sunny"}}}]},
    ]


def test_tool_result_without_its_call_is_a_400_naming_the_id(client, gemini):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=FLASH, messages=[
            WEATHER, {"role": "tool", "tool_call_id": "call_9", "content": "18C"}])
    assert "call_9" in caught.value.body["message"]
    assert gemini.requests == []


def test_structured_output_sends_the_json_schema_as_gemini_json_schema(client, gemini):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    gemini.enqueue(Reply(text='{"answer": "42"}'))
    completion = ask(client, "Answer in JSON", response_format={
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}})
    assert json.loads(completion.choices[0].message.content) == {"answer": "42"}
    assert gemini.requests[-1]["body"]["generationConfig"] == {"responseMimeType": "application/json",
                                                               "responseJsonSchema": schema}
    ask(client, "Any JSON", response_format={"type": "json_object"})
    assert gemini.requests[-1]["body"]["generationConfig"] == {"responseMimeType": "application/json"}


def test_images_go_inline_from_data_urls_and_as_file_data_from_https_urls(client, gemini):
    ask(client, [{"type": "text", "text": "What are these?"},
                 {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                 {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg?size=large"}},
                 {"type": "image_url", "image_url": {"url": "https://example.com/render/123"}}])
    assert gemini.requests[-1]["body"]["contents"][0]["parts"] == [
        {"text": "What are these?"},
        {"inlineData": {"mimeType": "image/png", "data": PIXEL}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg?size=large"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/render/123"}},
    ]


def test_reasoning_effort_sets_a_thinking_budget_and_thoughts_come_back_as_reasoning(client, gemini):
    gemini.enqueue(Reply(parts=[thought_part("Six times seven."), text_part("42")]))
    completion = ask(client, "6x7?", reasoning_effort="low")
    message = completion.choices[0].message
    assert (message.content, message.model_extra["reasoning_content"]) == ("42", "Six times seven.")
    assert completion.usage.completion_tokens_details.reasoning_tokens == 3
    assert completion.usage.completion_tokens == 4
    assert gemini.requests[-1]["body"]["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024,
                                                                                 "includeThoughts": True}
    gemini.enqueue(Reply(parts=[thought_part("Six times seven."), text_part("42")]))
    chunks = stream_of(client, model=PRO, messages=[{"role": "user", "content": "6x7?"}], reasoning_effort="high")
    assert "".join(extra(chunks, "reasoning_content")) == "Six times seven."
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "42"
    assert gemini.requests[-1]["body"]["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576,
                                                                                 "includeThoughts": True}


def test_gemini_3_gets_a_thinking_level(client, gemini):
    ask(client, model=PRO_3, reasoning_effort="medium")
    assert gemini.requests[-1]["body"]["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "HIGH",
                                                                                 "includeThoughts": True}
    ask(client, model=PRO_3, reasoning_effort="minimal")
    assert gemini.requests[-1]["body"]["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "LOW",
                                                                                 "includeThoughts": True}


def test_thought_signatures_survive_the_round_trip_on_their_own_parts(client, gemini):
    gemini.enqueue(Reply(parts=[thought_part("Need the weather."),
                                call_part("get_weather", {"city": "Paris"}, signature="sig-call")]))
    first = client.chat.completions.create(model=PRO_3, messages=[WEATHER], tools=TOOLS, reasoning_effort="high")
    message = first.choices[0].message
    call_id = message.tool_calls[0].id
    history = [WEATHER, replayed(message), {"role": "tool", "tool_call_id": call_id, "content": "18C"}]

    gemini.enqueue(Reply(parts=[text_part("It is 18C.", signature="sig-text")]))
    chunks = stream_of(client, model=PRO_3, tools=TOOLS, messages=history)
    assert gemini.requests[-1]["body"]["contents"][1] == {"role": "model", "parts": [
        {"functionCall": {"id": call_id, "name": "get_weather", "args": {"city": "Paris"}},
         "thoughtSignature": "sig-call"}]}
    signatures = extra(chunks, "reasoning_signature")
    assert len(signatures) == 1  # once per answer, whole
    history += [{"role": "assistant", "content": text_of(chunks), "reasoning_signature": signatures[0]},
                {"role": "user", "content": "Thanks"}]
    client.chat.completions.create(model=PRO_3, tools=TOOLS, messages=history)
    assert gemini.requests[-1]["body"]["contents"][3] == {"role": "model", "parts": [
        {"text": "It is 18C.", "thoughtSignature": "sig-text"}]}


def test_a_replayed_turn_keeps_the_order_of_its_parts(client, gemini):
    parts = [text_part("Paris first."), call_part("get_weather", {"city": "Paris"}),
             text_part("Then Rome."), call_part("get_weather", {"city": "Rome"}, signature="sig-rome")]
    gemini.enqueue(Reply(parts=parts), Reply(parts=parts))
    streamed = stream_of(client, messages=[WEATHER], tools=TOOLS)
    deltas = [d for c in streamed if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    streamed_turn = {"role": "assistant", "content": text_of(streamed), "reasoning_signature":
                     extra(streamed, "reasoning_signature")[0],
                     "tool_calls": [{"id": d.id, "type": "function", "function": {
                         "name": d.function.name, "arguments": d.function.arguments}} for d in deltas]}
    whole = client.chat.completions.create(model=FLASH, messages=[WEATHER], tools=TOOLS).choices[0].message
    for turn in (streamed_turn, replayed(whole)):
        paris, rome = [call["id"] for call in turn["tool_calls"]]
        client.chat.completions.create(model=FLASH, tools=TOOLS, messages=[
            WEATHER, turn, {"role": "tool", "tool_call_id": paris, "content": "18C"},
            {"role": "tool", "tool_call_id": rome, "content": "24C"}])
        assert gemini.requests[-1]["body"]["contents"][1]["parts"] == [
            {"text": "Paris first."},
            {"functionCall": {"id": paris, "name": "get_weather", "args": {"city": "Paris"}}},
            {"text": "Then Rome."},
            {"functionCall": {"id": rome, "name": "get_weather", "args": {"city": "Rome"}}, "thoughtSignature": "sig-rome"},
        ]


def test_an_older_flat_signature_map_is_still_replayed(client, gemini):
    client.chat.completions.create(model=PRO_3, tools=TOOLS, messages=[
        WEATHER, {"role": "assistant", "content": "Checking.", "reasoning_signature": '{"text":"s-t","call_0":"s-c"}',
                  "tool_calls": [{"id": "call_0", "type": "function",
                                  "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "18C"}])
    assert gemini.requests[-1]["body"]["contents"][1]["parts"] == [
        {"text": "Checking.", "thoughtSignature": "s-t"},
        {"functionCall": {"id": "call_0", "name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "s-c"}]


def test_a_signature_from_another_provider_is_not_sent_to_gemini(client, gemini):
    foreign = json.dumps({"anthropic": [{"thinking": "hm", "signature": "EqQB"}]})
    client.chat.completions.create(model=FLASH, messages=[
        WEATHER, {"role": "assistant", "content": "Sunny.", "reasoning_signature": foreign},
        {"role": "user", "content": "Thanks"}])
    assert gemini.requests[-1]["body"]["contents"][1] == {"role": "model", "parts": [{"text": "Sunny."}]}


def test_gemini_3_call_replayed_without_a_signature_gets_the_documented_bypass(client, gemini):
    client.chat.completions.create(model=PRO_3, tools=TOOLS, messages=[
        WEATHER,
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "18C"},
    ])
    assert gemini.requests[-1]["body"]["contents"][1]["parts"] == [
        {"text": "Checking."},
        {"functionCall": {"id": "call_0", "name": "get_weather", "args": {"city": "Paris"}},
         "thoughtSignature": "skip_thought_signature_validator"}]


def test_image_model_answers_text_and_an_image_as_content_parts(client, gemini, tenant):
    gemini.enqueue(Reply(parts=[text_part("Here is your cat."), image_part(PIXEL)]))
    completion = ask(client, "Draw a cat", model=FLASH_IMAGE)
    assert completion.choices[0].message.content == [
        {"type": "text", "text": "Here is your cat."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    assert gemini.requests[-1]["body"]["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"]}
    record = UsageRecord.objects.get(tenant=tenant)
    assert (record.input_tokens, record.output_tokens) == (5, 1294)
    # 5 in x $0.30/M + (4 words + 1290 image tokens) x $30/M
    assert record.cost == Decimal("0.0388215")


def test_streamed_image_model_delta_carries_the_images(client, gemini):
    gemini.enqueue(Reply(parts=[text_part("A cat:"), image_part(PIXEL, "image/jpeg")]))
    chunks = stream_of(client, model=FLASH_IMAGE, messages=[{"role": "user", "content": "Draw a cat"}])
    assert extra(chunks, "images") == [[{"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{PIXEL}"}}]]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "A cat:"
    assert chunks[-1].usage.completion_tokens == 1292


def test_image_edit_turn_sends_the_image_back_with_its_signature(client, gemini):
    gemini.enqueue(Reply(parts=[thought_part("Composing."), image_part("ZmFrZQ==", signature="sig-img"),
                                text_part("Done.", signature="sig-text")]))
    first = ask(client, "Draw a cat", model=PRO_IMAGE)
    ask_again = [{"role": "user", "content": "Draw a cat"}, replayed(first.choices[0].message),
                 {"role": "user", "content": "Make it blue"}]
    client.chat.completions.create(model=PRO_IMAGE, messages=ask_again)
    # In the answer's own order: the image came before the text.
    assert gemini.requests[-1]["body"]["contents"][1] == {"role": "model", "parts": [
        {"inlineData": {"mimeType": "image/png", "data": "ZmFrZQ=="}, "thoughtSignature": "sig-img"},
        {"text": "Done.", "thoughtSignature": "sig-text"}]}
