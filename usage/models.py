from decimal import Decimal

from django.db import models
from django.utils import timezone

MONEY = {"max_digits": 20, "decimal_places": 10, "default": Decimal("0")}


class Outcome(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"


class Ending(models.TextChoices):
    """How the exchange with the client ended."""

    COMPLETED = "completed", "Completed"
    CLIENT_GONE = "client_gone", "Client disconnected"
    UPSTREAM_ERROR = "upstream_error", "Upstream error"
    TIMEOUT = "timeout", "Timeout"
    INTERRUPTED = "interrupted", "Interrupted (the gateway process died)"
    CACHE_HIT = "cache_hit", "Answered from the cache"


class UsageRecord(models.Model):
    """One admitted /v1 request. Append-only: written once at settlement, never updated."""

    request_id = models.CharField(max_length=64, unique=True, editable=False)
    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="usage_records")
    api_key = models.ForeignKey(
        "gateway.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    model = models.CharField(max_length=200, help_text="Public model id the client asked for.")
    provider = models.CharField(max_length=64)
    upstream_model = models.CharField(max_length=200, blank=True)
    capability = models.CharField(max_length=32)
    streamed = models.BooleanField(default=False)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    images = models.PositiveIntegerField(default=0)
    video_seconds = models.DecimalField(max_digits=10, decimal_places=3, default=Decimal("0"))
    characters = models.PositiveIntegerField(default=0, help_text="Of text turned into speech.")
    audio_seconds = models.DecimalField(max_digits=10, decimal_places=3, default=Decimal("0"),
                                        help_text="Of audio transcribed.")
    media_detail = models.CharField(max_length=64, blank=True, help_text="The price the media units were billed at.")
    web_searches = models.PositiveIntegerField(default=0)
    web_fetches = models.PositiveIntegerField(default=0, help_text="Pages the web_fetch tool read.")
    search_units = models.PositiveIntegerField(default=0, help_text="Rerank searches billed (Cohere's search units).")
    code_seconds = models.DecimalField(max_digits=10, decimal_places=3, default=Decimal("0"),
                                       help_text="Seconds of code the code_interpreter tool ran.")
    byok = models.BooleanField(default=False, help_text="Made with the tenant's own provider key: billed the plan fee.")
    usage_estimated = models.BooleanField(
        default=False, help_text="The provider reported no usage (stream cut short); tokens were counted by us."
    )
    cost = models.DecimalField(**MONEY)
    reserved = models.DecimalField(**MONEY)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token (streams).")
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField(default=200)
    error_type = models.CharField(max_length=64, blank=True)
    ending = models.CharField(max_length=16, choices=Ending.choices)

    # Who the request was for: the client's end user (the OpenAI ``user`` field, Anthropic's
    # metadata.user_id, or x-tollgate-user) and its tags (``metadata``, or x-tollgate-tags).
    end_user = models.CharField(max_length=256, blank=True, default="")
    tags = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"]), models.Index(fields=["tenant", "end_user"])]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.cost}"


class DailyUsage(models.Model):
    """Per tenant, day and model totals, kept current by every settlement (one upsert)."""

    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="daily_usage")
    day = models.DateField()
    model = models.CharField(max_length=200)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    images = models.PositiveBigIntegerField(default=0)
    video_seconds = models.DecimalField(max_digits=14, decimal_places=3, default=Decimal("0"))
    characters = models.PositiveBigIntegerField(default=0)
    audio_seconds = models.DecimalField(max_digits=14, decimal_places=3, default=Decimal("0"))
    web_searches = models.PositiveBigIntegerField(default=0)
    web_fetches = models.PositiveBigIntegerField(default=0)
    code_seconds = models.DecimalField(max_digits=14, decimal_places=3, default=Decimal("0"))
    cost = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["-day", "model"]
        constraints = [models.UniqueConstraint(fields=["tenant", "day", "model"], name="one_rollup_per_day_model")]
        verbose_name_plural = "daily usage"

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day} {self.model}"


class MonthlySpend(models.Model):
    """A tenant's spend ledger for one calendar month (UTC).

    ``settled`` is the sum of settled costs; ``reserved`` the most the requests in flight can
    still cost. Admission adds to ``reserved`` with one conditional UPDATE
    (settled + reserved + amount <= cap), so concurrent requests can never pass the cap.
    """

    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="monthly_spend")
    month = models.DateField(help_text="First day of the month.")
    settled = models.DecimalField(**MONEY)
    reserved = models.DecimalField(**MONEY)
    # Media units counted against the plan's monthly limits: those made plus those reserved by
    # requests in flight, moved with the same conditional UPDATE as the money (db defaults: the
    # ledger's plain-SQL inserts name only the money).
    images = models.PositiveBigIntegerField(default=0, db_default=0)
    video_seconds = models.DecimalField(max_digits=14, decimal_places=3, default=Decimal("0"), db_default=Decimal("0"))
    characters = models.PositiveBigIntegerField(default=0, db_default=0)
    audio_seconds = models.DecimalField(max_digits=14, decimal_places=3, default=Decimal("0"), db_default=Decimal("0"))

    class Meta:
        ordering = ["-month"]
        constraints = [models.UniqueConstraint(fields=["tenant", "month"], name="one_ledger_per_month")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.month:%Y-%m}: {self.settled}"


class OpenReservation(models.Model):
    """A reservation not yet settled: the request is in flight (or its process died).

    Settlement deletes the row and gives back exactly the amount it holds. A request in flight
    checkpoints what it has produced so far onto its row every RESERVATION_CHECKPOINT_SECONDS;
    a row not heard of for RESERVATION_TTL_SECONDS belongs to a process that died (or a lost
    settlement), and the sweeper settles it as a record ending ``interrupted``, billed at its
    last checkpoint (a media row is released), so a crash never keeps part of a tenant's cap
    reserved nor leaves an admitted request unrecorded.
    """

    request_id = models.CharField(max_length=64, unique=True)
    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="+")
    month = models.DateField()
    amount = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The media units it holds on the month's counters (MonthlySpend.images, ...).
    images = models.PositiveIntegerField(default=0, db_default=0)
    video_seconds = models.DecimalField(max_digits=10, decimal_places=3, default=Decimal("0"), db_default=Decimal("0"))
    characters = models.PositiveIntegerField(default=0, db_default=0)
    audio_seconds = models.DecimalField(max_digits=10, decimal_places=3, default=Decimal("0"), db_default=Decimal("0"))
    # Who it is for, so the sweeper can write the record of a request whose process died.
    api_key_id = models.BigIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True, default="", db_default="")
    provider = models.CharField(max_length=64, blank=True, default="", db_default="")
    capability = models.CharField(max_length=32, blank=True, default="", db_default="")
    # The last checkpoint: what the request had produced and would cost by then.
    checkpoint_at = models.DateTimeField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0, db_default=0)
    output_tokens = models.PositiveIntegerField(default=0, db_default=0)
    cost = models.DecimalField(**MONEY, db_default=Decimal("0"))
    # Admitted from a budget lease (its token): the money is the lease's, not this row's.
    lease_token = models.CharField(max_length=32, blank=True, default="", db_default="")

    def __str__(self) -> str:
        return f"{self.request_id} {self.amount}"


class BudgetLease(models.Model):
    """A slice of a tenant's monthly budget held by one gateway process (usage/leases.py).

    Its amount is part of the month's ``MonthlySpend.reserved``: the process took it with one
    conditional UPDATE (settled + reserved + slice <= cap) and reserves requests against it in
    memory. Each settlement pays its cost out of the amount; the process gives back the rest
    when its last request settles (or after BUDGET_LEASE_IDLE_SECONDS idle, or at shutdown), and
    renews the row every RESERVATION_SWEEP_SECONDS meanwhile. A lease not renewed for
    BUDGET_LEASE_TTL_SECONDS belongs to a process that died: the sweeper gives it back.
    """

    token = models.CharField(max_length=32, unique=True)
    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="+")
    month = models.DateField()
    amount = models.DecimalField(**MONEY)
    holder = models.CharField(max_length=200, blank=True, help_text="The process holding it (host and pid).")
    created_at = models.DateTimeField(default=timezone.now)
    renewed_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.month:%Y-%m}: {self.amount} ({self.holder})"
