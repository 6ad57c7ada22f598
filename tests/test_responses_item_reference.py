"""item_reference input items on POST /v1/responses, as the Vercel AI SDK's multi-step tool loop
sends them with store: true: each names an item of a response the gateway stored for the same
tenant, and the provider gets the whole conversation. Anyone else's, a deleted or an expired
item is a 400 naming the reference, and nothing is called."""

from datetime import timedelta

import openai
import pytest
from django.utils import timezone

from conversations.models import StoredResponse
from tests.fakes import anthropic_upstream
from tests.fakes.anthropic_upstream import SIGNATURE
from usage.models import UsageRecord

CLAUDE = "anthropic/claude-sonnet-4-5"
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
THINKING = "The user wants the weather; ask the tool."
ASK = {"model": CLAUDE, "tools": [WEATHER_TOOL], "reasoning": {"effort": "medium"}, "max_output_tokens": 8000}


def first_step(client, streaming: bool):
    """The loop's first call: the model thinks, then calls the tool (stored: store is the default)."""
    if streaming:
        return list(client.responses.create(input="Weather in Paris?", stream=True, **ASK))[-1].response
    return client.responses.create(input="Weather in Paris?", **ASK)


def second_step_input(first, referenced=("reasoning", "function_call")) -> list[dict]:
    """What the AI SDK sends next: the user's turn, the stored items (by reference, those of the
    ``referenced`` types; today's AI SDK refers to reasoning and sends function calls whole), the
    tool's output."""
    call = next(item for item in first.output if item.type == "function_call")
    return [{"role": "user", "content": "Weather in Paris?"},
            *[{"type": "item_reference", "id": item.id} if item.type in referenced else item.to_dict()
              for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}]


def refused_reference(client, **kwargs) -> dict:
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(**ASK, **kwargs)
    return refused.value.body


@pytest.mark.parametrize(("streaming", "referenced"), [(False, ("reasoning", "function_call")), (True, ("reasoning",))],
                         ids=["whole-every-item-referenced", "streamed-reasoning-referenced"])
def test_a_tool_loop_sends_references_to_stored_items_and_claude_gets_the_whole_conversation(
        client, other_client, claude, tenant, other_tenant, streaming, referenced):
    claude.enqueue(anthropic_upstream.Reply(thinking=THINKING, text="", tool_calls=[("get_weather", {"city": "Paris"})]))
    first = first_step(client, streaming)
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    [reasoning, call] = first.output
    assert reasoning.id.startswith("rs_") and call.id.startswith("fc_")

    second = client.responses.create(input=second_step_input(first, referenced), **ASK)
    assert second.output_text == anthropic_upstream.DEFAULT_REPLY
    # The fake refuses a replayed thinking block whose signature is missing or whose text changed.
    assert claude.bodies[-1]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": THINKING, "signature": SIGNATURE},
            {"type": "tool_use", "id": call.call_id, "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.call_id, "content": "18C and sunny"}]},
    ]
    # Stored with the items themselves, not the references.
    items = client.responses.input_items.list(second.id, order="asc").data
    assert [item.type for item in items] == ["message", "reasoning", "function_call", "function_call_output"]
    assert items[1].id == reasoning.id and items[1].encrypted_content == reasoning.encrypted_content
    assert items[2].id == call.id and items[2].arguments == call.arguments

    # Charlie names Alice's items: refused as unknown, his request never reaches a provider.
    calls = len(claude.requests)
    body = refused_reference(other_client, input=second_step_input(first, referenced))
    assert body["param"] == "input[1]" and body["message"].startswith(f"input[1]: no stored item '{reasoning.id}'")
    assert THINKING not in str(body)
    assert len(claude.requests) == calls
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2


def test_references_to_unknown_deleted_or_expired_items_are_refused_by_name(client, claude, tenant):
    claude.enqueue(anthropic_upstream.Reply(thinking=THINKING, text="", tool_calls=[("get_weather", {"city": "Paris"})]))
    first = first_step(client, streaming=False)
    answered = client.responses.create(model=CLAUDE, input="Hello")
    calls = len(claude.requests)

    unknown = refused_reference(client, input=[{"role": "user", "content": "Hi"},
                                               {"type": "item_reference", "id": "rs_nope"}])
    assert unknown["param"] == "input[1]" and "input[1]: no stored item 'rs_nope'" in unknown["message"]

    StoredResponse.objects.filter(id=answered.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    message_id = answered.output[0].id
    expired = refused_reference(client, input=[{"type": "item_reference", "id": message_id}])
    assert f"input[0]: no stored item '{message_id}'" in expired["message"]

    client.responses.delete(first.id)
    deleted = refused_reference(client, input=second_step_input(first))
    assert f"input[1]: no stored item '{first.output[0].id}'" in deleted["message"]
    assert len(claude.requests) == calls


def test_a_reference_needs_an_id(client, claude):
    body = refused_reference(client, input=[{"type": "item_reference"}])
    assert body["param"] == "input[0].id"
