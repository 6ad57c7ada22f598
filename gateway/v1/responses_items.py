"""item_reference input items of POST /v1/responses: each is replaced by the stored item it names.

A client that stores its responses may send an item of one back by id alone,
``{"type": "item_reference", "id": "rs_..."}``, as the Vercel AI SDK's multi-step tool loop does
for the reasoning, function calls and messages of the response before. Output items of the
caller's tenant's live stored responses are found (conversations.store); an unknown id, another
tenant's, a deleted or an expired one is a 400 naming the input item, and nothing is called.
"""

from billing.entitlements import Caller
from conversations.store import find_items_for_tenant
from gateway.v1 import openai_responses
from gateway.v1.errors import bad_request
from gateway.v1.openai_responses import ResponsesCall
from providers.blocking import run_blocking


async def resolve_item_references(caller: Caller, call: ResponsesCall) -> None:
    """Put the stored items in place of the references in ``call``'s input, and its messages anew."""
    wanted = {index: item["id"] for index, item in enumerate(call.input_items) if item["type"] == "item_reference"}
    if not wanted:
        return
    found = await run_blocking(find_items_for_tenant, caller.tenant_id, set(wanted.values()))
    for index, item_id in wanted.items():
        if item_id not in found:
            raise bad_request(f"input[{index}]: no stored item '{item_id}'. A reference names an output item of one "
                              "of your responses stored with store: true and not deleted or expired; send the item "
                              "itself instead.", param=f"input[{index}]", code="item_not_found")
        call.input_items[index] = found[item_id]
    openai_responses.continue_from(call, [])
