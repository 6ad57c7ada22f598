from django.db import models
from django.utils import timezone


class StoredResponse(models.Model):
    """A /v1/responses answer kept for its tenant (``store: true``), so a later request can
    continue it with ``previous_response_id`` on any worker and any provider.

    ``input_items`` is the whole context the response answered: the earlier turns' items
    (reached through previous_response_id) and this request's own input, so continuing a
    conversation reads one row. ``response`` is the response object as the client got it;
    its ``output`` items are the model's turn. Rows are deleted by their tenant or, once
    ``expires_at`` passes (the plan's response_retention_days), by ``purge_responses``.
    """

    id = models.CharField(primary_key=True, max_length=64, editable=False)  # resp_...
    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="stored_responses")
    api_key = models.ForeignKey(
        "gateway.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="stored_responses"
    )
    model = models.CharField(max_length=200, help_text="Public id of the model that answered.")
    status = models.CharField(max_length=16)
    response = models.JSONField()
    input_items = models.JSONField(default=list)
    instructions = models.TextField(blank=True)
    # The id only, not a foreign key: deleting an earlier turn leaves the later ones whole
    # (each keeps its full context), and a write never depends on another row still existing.
    previous_response_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at", "-id"], name="stored_response_by_tenant")]

    def __str__(self) -> str:
        return f"{self.id} {self.model}"


class StoredItem(models.Model):
    """An output item of a stored response, found by its id (msg_, rs_, fc_, ws_...): how an
    ``item_reference`` in a later request reaches it. The item itself stays in the response's
    ``output``; this row only points there, and goes when the response goes.
    """

    response = models.ForeignKey(StoredResponse, on_delete=models.CASCADE, related_name="items")
    item_id = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["item_id"], name="stored_item_by_id")]

    def __str__(self) -> str:
        return f"{self.item_id} of {self.response_id}"
