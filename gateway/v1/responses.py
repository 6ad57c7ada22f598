"""/v1/responses: OpenAI's Responses API in front of every chat model of the catalog, with stored
responses that continue on any worker and any provider.

    POST   /v1/responses                     decode (gateway.v1.openai_responses); the earlier turns
                                             when previous_response_id names one of the tenant's
                                             stored responses, and the stored items that
                                             item_reference inputs name; then the chat path (serve_chat: plan,
                                             admission, router, one usage record); with store (the
                                             default) the response is stored before its end reaches
                                             the client, so the next turn can name it at once
    GET    /v1/responses                     the tenant's stored responses, a page (limit, after, order, model)
    GET    /v1/responses/{id}                one (?stream=true: replayed as its stream's events)
    DELETE /v1/responses/{id}                delete one
    GET    /v1/responses/{id}/input_items    the items it answered, a page (limit, after, order)
    DELETE /v1/responses/all                 delete every stored response of the tenant

Another tenant's response, a deleted or an expired one are all the same 404.
"""

import time
from collections.abc import AsyncIterator
from typing import Any

from django.http import JsonResponse, StreamingHttpResponse

from billing.entitlements import Caller
from conversations.models import StoredResponse
from conversations.store import (
    ResponseToStore,
    delete_response_for_tenant,
    delete_responses_for_tenant,
    get_response_for_tenant,
    list_responses_for_tenant,
    save_response,
)
from gateway.serving.call import Call
from gateway.serving.chat import serve_chat
from gateway.v1 import openai_responses, openai_responses_stream, sse
from gateway.v1.admission import authenticated_call, read_json
from gateway.v1.answers import StreamEncoder, answer
from gateway.v1.errors import GatewayError, api_view, bad_request
from gateway.v1.openai_responses import ResponsesCall
from gateway.v1.openai_responses_stream import ResponseStream
from gateway.v1.responses_items import resolve_item_references
from providers.blocking import run_blocking
from providers.types import ChatResult
from usage.writer import writer

DEFAULT_PAGE = 20
MAX_PAGE = 100


class Turn:
    """One POST /v1/responses: encodes its answer, whole or streamed, and stores it once complete."""

    def __init__(self, call: ResponsesCall, caller: Caller, *, response_id: str, earlier_items: list[dict],
                 outcome):
        self.call = call
        self.caller = caller
        self.outcome = outcome
        self.response_id = response_id
        self.earlier_items = earlier_items
        self.created_at = int(time.time())
        self.answer: dict[str, Any] | None = None
        self.stream: ResponseStream | None = None

    def encode_answer(self, result: ChatResult, model: str) -> dict[str, Any]:
        if self.answer is not None:  # stored already (store), with its item ids: the same one
            return self.answer
        self.answer = openai_responses.encode_result(self.call, result, response_id=self.response_id, model=model,
                                                     created_at=self.created_at)
        return self.answer

    def stream_encoder(self, model: str, input_estimate: int) -> StreamEncoder:
        self.stream = ResponseStream(self.call, response_id=self.response_id, model=model,
                                     created_at=self.created_at)
        return self.stream

    async def store(self) -> None:
        """Once the answer is whole and settled: a stream's final response, or the whole answer."""
        if not self.call.store:
            return
        if self.stream is not None:
            answer = self.stream.final
        else:
            answer = self.answer or self.encode_answer(self.outcome.result, self.outcome.served_model)
        if answer is None:
            return
        await writer.run(save_response, ResponseToStore(
            id=self.response_id, tenant_id=self.caller.tenant_id, api_key_id=self.caller.key_id,
            model=answer["model"], status=answer["status"], response=answer,
            input_items=self.earlier_items + self.call.input_items, instructions=self.call.instructions,
            previous_response_id=self.call.previous_response_id,
            retention_days=self.caller.plan.response_retention_days,
        ))


def not_found(response_id: str, *, param: str | None = None) -> GatewayError:
    return GatewayError(404, f"No response with id '{response_id}'. It may have been deleted or expired, or was "
                        "created with store=false; GET /v1/responses lists the stored ones.", param=param,
                        code="response_not_found")


async def find_stored(caller: Caller, response_id: str, *, param: str | None = None) -> StoredResponse:
    try:
        return await run_blocking(get_response_for_tenant, caller.tenant_id, response_id)
    except StoredResponse.DoesNotExist:
        raise not_found(response_id, param=param) from None


async def call_for(request, *methods: str) -> Call:
    if request.method not in methods:
        raise GatewayError(405, f"{request.path} accepts {', '.join(methods)}, not {request.method}.",
                           code="method_not_allowed", headers={"Allow": ", ".join(methods)})
    return await authenticated_call(request, method=request.method)


@api_view
async def create_or_list_responses(request):
    """POST creates a response; GET lists the stored ones."""
    gateway_call = await call_for(request, "POST", "GET")
    caller = gateway_call.caller
    if request.method == "GET":
        return await list_responses(request, caller)
    call = openai_responses.decode(read_json(request))
    await resolve_item_references(caller, call)
    earlier: list[dict] = []
    if call.previous_response_id:
        previous = await find_stored(caller, call.previous_response_id, param="previous_response_id")
        earlier = previous.input_items + previous.response["output"]
        openai_responses.continue_from(call, earlier)
    turn = Turn(call, caller, response_id=f"resp_{request.request_id[4:]}", earlier_items=earlier,
                outcome=gateway_call.outcome)
    outcome = await serve_chat(gateway_call, call.chat, on_complete=turn.store)
    return answer(outcome, encode_answer=turn.encode_answer, stream_encoder=turn.stream_encoder)


def page_params(request) -> tuple[int, str, str | None]:
    """limit (1-100, default 20), order (asc | desc, default desc) and after, from the query."""
    raw = request.GET.get("limit", str(DEFAULT_PAGE))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise bad_request(f"'limit' must be a whole number from 1 to {MAX_PAGE}, not '{raw}'.", param="limit")
    order = request.GET.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request(f"'order' must be 'asc' or 'desc', not '{order}'.", param="order")
    return int(raw), order, request.GET.get("after") or None


def page(data: list[dict], has_more: bool) -> JsonResponse:
    return JsonResponse({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                         "last_id": data[-1]["id"] if data else None, "has_more": has_more})


async def list_responses(request, caller: Caller) -> JsonResponse:
    limit, order, after = page_params(request)
    try:
        rows, has_more = await run_blocking(lambda: list_responses_for_tenant(
            caller.tenant_id, limit=limit, order=order, after=after, model=request.GET.get("model") or None))
    except StoredResponse.DoesNotExist:
        raise bad_request(f"'after' names no stored response of yours ('{after}').", param="after") from None
    return page([row.response for row in rows], has_more)


@api_view
async def retrieve_or_delete_response(request, response_id: str):
    """GET one stored response (or its replayed stream); DELETE it."""
    caller = (await call_for(request, "GET", "DELETE")).caller
    if request.method == "DELETE":
        if not await run_blocking(delete_response_for_tenant, caller.tenant_id, response_id):
            raise not_found(response_id)
        return JsonResponse({"id": response_id, "object": "response", "deleted": True})
    stored = await find_stored(caller, response_id)
    if request.GET.get("stream") != "true":
        return JsonResponse(stored.response)
    after = request.GET.get("starting_after")
    if after is not None and not after.isdigit():
        raise bad_request("'starting_after' must be an event's sequence_number.", param="starting_after")
    events = openai_responses_stream.replay(stored.response, starting_after=int(after) if after is not None else None)
    return StreamingHttpResponse(each(events), content_type="text/event-stream", headers=sse.HEADERS)


async def each(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@api_view
async def list_input_items(request, response_id: str):
    """The items a stored response answered: the earlier turns' and its own input."""
    caller = (await call_for(request, "GET")).caller
    limit, order, after = page_params(request)
    stored = await find_stored(caller, response_id)
    items = stored.input_items if order == "asc" else stored.input_items[::-1]
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise bad_request(f"'after' names no input item of this response ('{after}').", param="after")
        items = items[ids.index(after) + 1:]
    return page(items[:limit], len(items) > limit)


@api_view
async def delete_all_responses(request):
    caller = (await call_for(request, "DELETE")).caller
    deleted = await run_blocking(delete_responses_for_tenant, caller.tenant_id)
    return JsonResponse({"object": "list", "deleted": deleted})
