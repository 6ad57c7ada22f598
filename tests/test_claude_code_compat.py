"""Claude Code (ANTHROPIC_BASE_URL at the gateway) works unchanged: its beta requests, adaptive
thinking, context management and mid-conversation system messages are served on Claude and on other
models, its stream keeps each thinking block's signature inside that block, and its thinking budget
reaches Claude exactly."""

import anthropic
import httpx2
import pytest

from tests.conftest import wait_for
from tests.fakes import anthropic_upstream, gemini_upstream
from tests.fakes.anthropic_upstream import SIGNATURE, text_block, thinking_block, tool_block
from tests.fakes.gemini_upstream import text_part, thought_part
from tests.fakes.openai_upstream import DEFAULT_REPLY
from usage.models import UsageRecord

CLAUDE = "anthropic/claude-sonnet-4-5"
GPT = "openai/gpt-5-mini"
GEMINI = "gemini/gemini-2.5-flash"
BETAS = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "context-management-2025-06-27",
         "fine-grained-tool-streaming-2025-05-14"]
TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
          "cache_control": {"type": "ephemeral"}}]
CONTEXT_MANAGEMENT = {"edits": [{"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 1}}]}
# A conversation as Claude Code sends it: earlier thinking turns (signed by Anthropic), a tool loop,
# and a system message in the middle.
CONVERSATION = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": [thinking_block("Need the tool.", "sig-first"),
                                      tool_block("toolu_01", "get_weather", {"city": "Paris"})]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"}]},
    {"role": "assistant", "content": [thinking_block("Now answer.", "sig-second"), text_block("It is 18C.")]},
    {"role": "system", "content": "The user prefers short answers."},
    {"role": "user", "content": "And tomorrow?"},
]


@pytest.fixture
def claude_code(gateway_url, api_key):
    """The anthropic SDK as Claude Code holds it, recording the URLs it calls."""
    urls: list[httpx2.URL] = []
    http_client = httpx2.Client(event_hooks={"request": [lambda request: urls.append(request.url)]})
    client = anthropic.Anthropic(base_url=gateway_url, api_key=api_key, max_retries=0, http_client=http_client)
    client.urls = urls
    yield client
    client.close()


def stream_as_claude_code(client, model: str, **overrides):
    """A streamed beta request shaped as Claude Code's (its SDK adds ?beta=true); its events and final
    message."""
    request = {"model": model, "max_tokens": 32000, "betas": BETAS, "extra_query": {"beta": "true"},
               "system": "You are Claude Code.",
               "messages": CONVERSATION, "tools": TOOLS, "thinking": {"type": "adaptive"},
               "output_config": {"effort": "high"}, "context_management": CONTEXT_MANAGEMENT,
               "metadata": {"user_id": "session-1"}, **overrides}
    with client.beta.messages.stream(**request) as stream:
        events = list(stream)
        return events, stream.get_final_message()


def block_events(events) -> list[tuple]:
    """(event, index, block or delta type) of the content-block events, in order."""
    out = []
    for event in events:
        if event.type == "content_block_start":
            out.append(("start", event.index, event.content_block.type))
        elif event.type == "content_block_delta":
            out.append(("delta", event.index, event.delta.type))
        elif event.type == "content_block_stop":
            out.append(("stop", event.index, None))
    return [item for n, item in enumerate(out) if n == 0 or item != out[n - 1]]  # repeated deltas once


def record_of(tenant) -> UsageRecord:
    return wait_for(lambda: UsageRecord.objects.filter(tenant=tenant).first(), what="the usage record")


def test_claude_code_request_is_served_on_claude_with_the_signature_inside_its_thinking_block(
        claude_code, claude, tenant, other_tenant):
    claude.enqueue(anthropic_upstream.Reply(thinking="The user asks about tomorrow.", text="Sunny, 20C."))
    events, final = stream_as_claude_code(claude_code, CLAUDE)

    assert claude_code.urls[-1].params.get("beta") == "true"
    assert block_events(events) == [
        ("start", 0, "thinking"), ("delta", 0, "thinking_delta"), ("delta", 0, "signature_delta"), ("stop", 0, None),
        ("start", 1, "text"), ("delta", 1, "text_delta"), ("stop", 1, None)]
    assert [block.type for block in final.content] == ["thinking", "text"]
    thinking, text = final.content
    assert thinking.thinking == "The user asks about tomorrow." and SIGNATURE in thinking.signature
    assert text.text == "Sunny, 20C."

    sent = claude.requests[-1]
    assert sent["body"]["context_management"] == CONTEXT_MANAGEMENT
    betas = sent["headers"]["anthropic-beta"].split(",")
    assert {"context-management-2025-06-27", "interleaved-thinking-2025-05-14"} <= set(betas)
    assert "claude-code-20250219" not in betas  # bookkeeping for the gateway, not Anthropic's business
    # Adaptive at effort high: high's budget, at most half of max_tokens (room for the answer).
    assert sent["body"]["thinking"] == {"type": "enabled", "budget_tokens": 16000}
    assert sent["body"]["max_tokens"] == 32000
    assert sent["body"]["system"] == [{"type": "text", "text": "You are Claude Code."}]
    # clear_thinking kept the last thinking turn only; the system message stayed in its place.
    assert sent["body"]["messages"] == [
        {"role": "user", "content": [text_block("Weather in Paris?")]},
        {"role": "assistant", "content": [tool_block("toolu_01", "get_weather", {"city": "Paris"})]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"}]},
        {"role": "assistant", "content": [thinking_block("Now answer.", "sig-second"), text_block("It is 18C.")]},
        {"role": "user", "content": [text_block("<system>\nThe user prefers short answers.\n</system>"),
                                     text_block("And tomorrow?")]},
    ]
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1
    assert record_of(tenant).streamed
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_the_streamed_answer_goes_back_to_claude_unchanged(claude_code, claude):
    claude.enqueue(anthropic_upstream.Reply(thinking="Think first.", text="Done."))
    _, final = stream_as_claude_code(claude_code, CLAUDE, messages=[{"role": "user", "content": "Go"}])
    claude_code.beta.messages.create(
        model=CLAUDE, max_tokens=32000, betas=BETAS, thinking={"type": "adaptive"}, timeout=30,
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        messages=[{"role": "user", "content": "Go"}, {"role": "assistant", "content": final.content},
                  {"role": "user", "content": "Next"}])
    assert claude.bodies[-1]["messages"][1]["content"] == [thinking_block("Think first."), text_block("Done.")]


def test_interleaved_thinking_streams_each_signature_in_place_and_goes_back_one_to_one(claude_code, claude):
    interleaved = [thinking_block("First the city.", "sig-one"), anthropic_upstream.redacted_block("EmwKAhgB"),
                   text_block("Checking."), thinking_block("Then the tool.", "sig-two"),
                   tool_block("toolu_07", "get_weather", {"city": "Paris"})]
    claude.enqueue(anthropic_upstream.Reply(blocks=interleaved))
    _, final = stream_as_claude_code(claude_code, CLAUDE, messages=[{"role": "user", "content": "Weather?"}])
    # The redacted block rides in a signed thinking block of its own, in its place.
    assert [(block.type, getattr(block, "thinking", None)) for block in final.content] == [
        ("thinking", "First the city."), ("thinking", ""), ("text", None), ("thinking", "Then the tool."),
        ("tool_use", None)]
    assert all(block.signature for block in final.content if block.type == "thinking")
    claude_code.beta.messages.create(model=CLAUDE, max_tokens=32000, betas=BETAS, tools=TOOLS, timeout=30,
                                     thinking={"type": "adaptive"}, messages=[
        {"role": "user", "content": "Weather?"}, {"role": "assistant", "content": final.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_07", "content": "18C"}]}])
    assert claude.bodies[-1]["messages"][1]["content"] == interleaved


def test_claude_code_request_is_served_on_an_openai_model(claude_code, fake_openai, tenant, other_tenant):
    events, final = stream_as_claude_code(claude_code, GPT)

    assert [block.type for block in final.content] == ["text"] and final.content[0].text == DEFAULT_REPLY
    assert events[-1].type == "message_stop"
    sent = fake_openai.requests[-1]["body"]
    assert "context_management" not in sent and sent["reasoning_effort"] == "high"
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert [(m["role"], m.get("content")) for m in sent["messages"]] == [
        ("system", "You are Claude Code."), ("user", "Weather in Paris?"), ("assistant", None), ("tool", "18C"),
        ("assistant", "It is 18C."), ("system", "The user prefers short answers."), ("user", "And tomorrow?")]
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


def test_the_demo_model_serves_claude_code_offline(claude_code):
    _, final = stream_as_claude_code(claude_code, "demo/echo", max_tokens=4096,
                                     messages=[{"role": "user", "content": "hello there"},
                                               {"role": "system", "content": "Be brief."},
                                               {"role": "user", "content": "again"}])
    assert [(block.type, block.text) for block in final.content] == [("text", "again")]


def test_a_system_message_cleared_at_the_next_user_message_is_not_shown_after_it(claude_code, claude):
    claude_code.beta.messages.create(model=CLAUDE, max_tokens=1024, betas=BETAS, messages=[
        {"role": "user", "content": "One"},
        {"role": "system", "content": "Only for the first turn.", "clear_at": "next_user_message"},
        {"role": "assistant", "content": "Ok."},
        {"role": "user", "content": "Two"},
    ])
    assert [m["content"] for m in claude.bodies[-1]["messages"]] == [
        [text_block("One")], [text_block("Ok.")], [text_block("Two")]]


def test_an_explicit_thinking_budget_reaches_claude_exactly(claude_code, claude, tenant):
    claude.enqueue(anthropic_upstream.Reply(thinking="Long thought.", text="42"))
    message = claude_code.messages.create(
        model=CLAUDE, max_tokens=32000, thinking={"type": "enabled", "budget_tokens": 31999},
        messages=[{"role": "user", "content": "answer?"}], extra_query={"beta": "true"}, timeout=30)
    body = claude.bodies[-1]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 31999}
    assert body["max_tokens"] == 32000  # what admission reserved, never more
    # The answer not streamed carries the signature on its thinking block.
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert SIGNATURE in message.content[0].signature and message.content[1].text == "42"
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1


def test_a_budget_not_under_max_tokens_is_refused_naming_both(claude_code, claude, tenant):
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude_code.messages.create(model=CLAUDE, max_tokens=32000,
                                    thinking={"type": "enabled", "budget_tokens": 32000},
                                    messages=[{"role": "user", "content": "answer?"}], timeout=30)
    message = caught.value.body["error"]["message"]
    assert "max_tokens" in message and "thinking.budget_tokens" in message and "32000" in message
    assert claude.requests == [] and not UsageRecord.objects.filter(tenant=tenant).exists()


def test_an_explicit_thinking_budget_is_gemini_thinking_budget(claude_code, gemini):
    claude_code.messages.create(model=GEMINI, max_tokens=8000, thinking={"type": "enabled", "budget_tokens": 5000},
                                messages=[{"role": "user", "content": "answer?"}])
    thinking = gemini.requests[-1]["body"]["generationConfig"]["thinkingConfig"]
    assert thinking["thinkingBudget"] == 5000


def test_a_signature_sent_after_the_answer_never_becomes_a_block_after_it(claude_code, gemini):
    # Gemini signs its answer at the end; Claude Code reads the last block as the answer.
    gemini.enqueue(gemini_upstream.Reply(parts=[thought_part("Pondering."), text_part("Sunny.", signature="sig")]))
    _, final = stream_as_claude_code(claude_code, GEMINI, messages=[{"role": "user", "content": "Weather?"}])
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[1].text == "Sunny."
