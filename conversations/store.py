"""Stored responses: written when an answer completes, read back by their tenant only.

    save_response(...)                          the row, before the answer's end reaches the client
    get_response_for_tenant(tenant_id, id)      StoredResponse, or DoesNotExist (another tenant's,
                                                deleted or expired: all the same to the caller)
    find_items_for_tenant(tenant_id, ids)       output items of the tenant's live responses, by id
                                                (item_reference); the ids not found are not keys
    list_responses_for_tenant(tenant_id, ...)   a page, newest first by default, and whether more follow
    delete_response_for_tenant(tenant_id, id)   True when there was one to delete
    delete_responses_for_tenant(tenant_id)      how many were deleted
    purge_expired_responses()                   how many expired rows were deleted (purge_responses)
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from conversations.models import StoredItem, StoredResponse


@dataclass(slots=True)
class ResponseToStore:
    id: str
    tenant_id: int
    api_key_id: int | None
    model: str
    status: str
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    instructions: str | None
    previous_response_id: str | None
    retention_days: int


@transaction.atomic
def save_response(stored: ResponseToStore) -> None:
    now = timezone.now()
    StoredResponse.objects.create(
        id=stored.id, tenant_id=stored.tenant_id, api_key_id=stored.api_key_id, model=stored.model,
        status=stored.status, response=stored.response, input_items=stored.input_items,
        instructions=stored.instructions or "", previous_response_id=stored.previous_response_id or "",
        created_at=now, expires_at=now + timedelta(days=stored.retention_days),
    )
    StoredItem.objects.bulk_create([StoredItem(response_id=stored.id, item_id=item["id"])
                                    for item in stored.response["output"]])


def live_responses(tenant_id: int) -> QuerySet[StoredResponse]:
    return StoredResponse.objects.filter(tenant_id=tenant_id, expires_at__gt=timezone.now())


def get_response_for_tenant(tenant_id: int, response_id: str) -> StoredResponse:
    return live_responses(tenant_id).get(id=response_id)


def find_items_for_tenant(tenant_id: int, item_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The output items with these ids among the tenant's live stored responses, as stored (the
    newest response's, should an id repeat). Another tenant's, a deleted or an expired response's
    item is not found."""
    wanted = set(item_ids)
    holders = StoredItem.objects.filter(item_id__in=wanted).values("response_id")
    found: dict[str, dict[str, Any]] = {}
    for stored in live_responses(tenant_id).filter(id__in=holders).order_by("created_at", "id"):
        found.update((item["id"], item) for item in stored.response["output"] if item["id"] in wanted)
    return found


def list_responses_for_tenant(tenant_id: int, *, limit: int, order: str = "desc", after: str | None = None,
                              model: str | None = None) -> tuple[list[StoredResponse], bool]:
    """Up to ``limit`` responses in creation order (``desc``: newest first), those after the
    response ``after`` when given (DoesNotExist if it is not the tenant's). ``model`` is a
    public model id, or a pattern ending in ``*`` (``anthropic/*``)."""
    rows = live_responses(tenant_id)
    if model:
        rows = rows.filter(model__startswith=model[:-1]) if model.endswith("*") else rows.filter(model=model)
    newest_first = order == "desc"
    if after:
        cursor = live_responses(tenant_id).values("created_at", "id").get(id=after)
        beyond = "lt" if newest_first else "gt"
        rows = rows.filter(Q(**{f"created_at__{beyond}": cursor["created_at"]})
                           | Q(created_at=cursor["created_at"], **{f"id__{beyond}": cursor["id"]}))
    rows = rows.order_by(*(["-created_at", "-id"] if newest_first else ["created_at", "id"]))
    page = list(rows[:limit + 1])
    return page[:limit], len(page) > limit


def delete_responses(rows: QuerySet[StoredResponse]) -> int:
    """How many responses were deleted (their StoredItem rows go with them, uncounted)."""
    _, per_model = rows.delete()
    return per_model.get(StoredResponse._meta.label, 0)


def delete_response_for_tenant(tenant_id: int, response_id: str) -> bool:
    return delete_responses(live_responses(tenant_id).filter(id=response_id)) > 0


def delete_responses_for_tenant(tenant_id: int) -> int:
    return delete_responses(StoredResponse.objects.filter(tenant_id=tenant_id))


def purge_expired_responses(now: datetime | None = None) -> int:
    return delete_responses(StoredResponse.objects.filter(expires_at__lte=now or timezone.now()))
