"""Stored responses: written when an answer completes, read back by their tenant only.

    save_response(...)                          the row, before the answer's end reaches the client
    get_response_for_tenant(tenant_id, id)      StoredResponse, or DoesNotExist (another tenant's,
                                                deleted or expired: all the same to the caller)
    list_responses_for_tenant(tenant_id, ...)   a page, newest first by default, and whether more follow
    delete_response_for_tenant(tenant_id, id)   True when there was one to delete
    delete_responses_for_tenant(tenant_id)      how many were deleted
    purge_expired_responses()                   how many expired rows were deleted (purge_responses)
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from conversations.models import StoredResponse


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


def save_response(stored: ResponseToStore) -> None:
    now = timezone.now()
    StoredResponse.objects.create(
        id=stored.id, tenant_id=stored.tenant_id, api_key_id=stored.api_key_id, model=stored.model,
        status=stored.status, response=stored.response, input_items=stored.input_items,
        instructions=stored.instructions or "", previous_response_id=stored.previous_response_id or "",
        created_at=now, expires_at=now + timedelta(days=stored.retention_days),
    )


def live_responses(tenant_id: int) -> QuerySet[StoredResponse]:
    return StoredResponse.objects.filter(tenant_id=tenant_id, expires_at__gt=timezone.now())


def get_response_for_tenant(tenant_id: int, response_id: str) -> StoredResponse:
    return live_responses(tenant_id).get(id=response_id)


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


def delete_response_for_tenant(tenant_id: int, response_id: str) -> bool:
    deleted, _ = live_responses(tenant_id).filter(id=response_id).delete()
    return deleted > 0


def delete_responses_for_tenant(tenant_id: int) -> int:
    deleted, _ = StoredResponse.objects.filter(tenant_id=tenant_id).delete()
    return deleted


def purge_expired_responses(now: datetime | None = None) -> int:
    deleted, _ = StoredResponse.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
