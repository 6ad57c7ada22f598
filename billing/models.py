from decimal import Decimal
from fnmatch import fnmatchcase

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from providers.models import Capability


class Plan(models.Model):
    """What a tenant may do: models, capabilities, request rate and monthly spend."""

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    requests_per_minute = models.PositiveIntegerField(default=60)
    tokens_per_minute = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Tokens (prompt and output) per minute per API key; empty = no limit. A key may set a lower one.")
    max_concurrent_requests = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Requests in flight at once per API key (a stream until it ends); empty = no limit. A key may "
                  "set a lower one.")
    monthly_spend_limit = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="USD per calendar month; empty = no cap."
    )
    allowed_capabilities = models.JSONField(default=list, help_text=f"Any of {Capability.values}.")
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Public model ids or patterns, e.g. 'demo/*', 'openai/gpt-4o-mini', '*'."
    )
    allowed_model_groups = models.JSONField(
        default=list, blank=True, help_text="Catalog model groups, e.g. 'small', 'frontier'."
    )
    max_keys = models.PositiveIntegerField(default=5)
    max_members = models.PositiveIntegerField(default=3)
    stripe_price_id = models.CharField(
        max_length=100, blank=True, help_text="The Stripe Price a subscription to this plan carries (price_...)."
    )
    byok_fee_per_request = models.DecimalField(
        max_digits=10, decimal_places=6, default=Decimal("0"),
        help_text="USD charged per request made with the tenant's own provider key (instead of the provider price).",
    )
    grace_days = models.PositiveSmallIntegerField(
        default=7, help_text="Days a past-due subscription keeps this plan before the tenant drops to Free."
    )
    allows_overage = models.BooleanField(
        default=False, help_text="Spend past the included amount is billed as metered overage."
    )
    included_monthly_spend = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0"),
        help_text="USD per month the price includes; spend above it is overage (with allows_overage).",
    )
    overage_unit_amount = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal("0.01"),
        help_text="USD per meter unit: the unit price of the metered Stripe price.",
    )
    overage_meter_event_name = models.CharField(
        max_length=100, blank=True, help_text="The Stripe Billing Meter's event_name, e.g. 'tollgate_overage'."
    )
    stripe_overage_price_id = models.CharField(
        max_length=100, blank=True, help_text="The metered Stripe Price Checkout adds beside stripe_price_id."
    )
    images_per_month = models.PositiveIntegerField(
        null=True, blank=True, help_text="Images generated per calendar month; empty = no limit.")
    video_seconds_per_month = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds of video generated per calendar month; empty = no limit.")
    speech_characters_per_month = models.PositiveIntegerField(
        null=True, blank=True, help_text="Characters turned into speech per calendar month; empty = no limit.")
    transcription_minutes_per_month = models.PositiveIntegerField(
        null=True, blank=True, help_text="Minutes of audio transcribed per calendar month; empty = no limit.")
    max_image_pixels = models.PositiveIntegerField(
        null=True, blank=True, help_text="Largest image, width x height in pixels (1048576 = 1024x1024); empty = any.")
    max_video_resolution = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Tallest video in lines (720 = 720p); empty = any.")
    web_fetch_price = models.DecimalField(
        max_digits=10, decimal_places=6, default=Decimal("0.001"),
        help_text="USD per page the web_fetch tool reads (with the 'web_fetch' capability).")
    code_second_price = models.DecimalField(
        max_digits=10, decimal_places=6, default=Decimal("0.0001"),
        help_text="USD per second of code the code_interpreter tool runs (with the 'code_interpreter' capability).")
    response_retention_days = models.PositiveSmallIntegerField(
        default=30, help_text="Days stored /v1/responses are kept before `purge_responses` deletes them.")
    prepaid = models.BooleanField(
        default=False, help_text="Pay as you go: requests are paid from purchased credits and stop at a zero balance.")
    credit_amounts = models.JSONField(
        default=list, blank=True,
        help_text='USD amounts a tenant on this plan may buy as credits (and auto top-up by), e.g. ["10", "20", "50"].')
    monthly_credits = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0"),
        help_text="USD of credits the plan includes each calendar month (a 'grant' entry on the 1st, UTC, kept "
                  "like bought credits); 0 = none.")
    credit_overage = models.BooleanField(
        default=False, help_text="Past the monthly spend limit, requests go on paid from the tenant's credits "
                                 "(bought or included) until they run out, instead of stopping.")
    cache_enabled = models.BooleanField(
        default=False, help_text="Tenants may answer repeated requests from the gateway's cache (exact matches).")
    semantic_cache_enabled = models.BooleanField(
        default=False, help_text="Tenants may also match requests that mean nearly the same (semantic cache).")
    cache_hit_price = models.DecimalField(
        max_digits=10, decimal_places=6, default=Decimal("0"),
        help_text="USD billed per request answered from the cache, whatever its size (0 = free).")
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["stripe_price_id"], condition=~models.Q(stripe_price_id=""),
                                    name="one_plan_per_stripe_price"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.credit_overage and (self.monthly_spend_limit is None or self.allows_overage or self.prepaid):
            raise ValidationError({"credit_overage": "Credits pay for spend past the monthly spend limit: set the "
                                   "limit, and turn off metered overage and pay as you go (each already decides "
                                   "who pays past it)."})

    def allows_capability(self, capability: str) -> bool:
        return capability in self.allowed_capabilities

    def allows_model(self, public_id: str, group: str) -> bool:
        if group and group in self.allowed_model_groups:
            return True
        return any(fnmatchcase(public_id, pattern) for pattern in self.allowed_models)


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    TRIALING = "trialing", "Trialing"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"


class Subscription(models.Model):
    tenant = models.OneToOneField("gateway.Tenant", on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(null=True, blank=True, help_text="When the first payment failed.")
    stripe_customer_id = models.CharField(max_length=100, blank=True)
    stripe_subscription_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["stripe_customer_id"], condition=~models.Q(stripe_customer_id=""),
                                    name="one_tenant_per_stripe_customer"),
            models.UniqueConstraint(fields=["stripe_subscription_id"],
                                    condition=~models.Q(stripe_subscription_id=""),
                                    name="one_tenant_per_stripe_subscription"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} on {self.plan}"


class StripeEvent(models.Model):
    """A webhook event we acted on. The unique event id is inserted before anything else, in the
    same transaction as the change, so a duplicate delivery (also a concurrent one) acts once."""

    stripe_event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    api_version = models.CharField(max_length=40, blank=True)
    created = models.DateTimeField(help_text="When Stripe created the event.")
    received_at = models.DateTimeField(default=timezone.now, editable=False)
    livemode = models.BooleanField(default=False)
    stripe_object_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.stripe_event_id} {self.type}"


class PlanChangeReason(models.TextChoices):
    STRIPE = "stripe", "Stripe subscription"
    GRACE_EXPIRED = "grace_expired", "Payment grace period over"
    OPERATOR = "operator", "Operator (admin)"
    CREDITS = "credits", "Credits bought"


class PlanChange(models.Model):
    """Audit log: one row per real change of a tenant's plan, never updated."""

    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="plan_changes")
    from_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    to_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=16, choices=PlanChangeReason.choices)
    detail = models.CharField(max_length=300, blank=True)
    stripe_event_id = models.CharField(max_length=100, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.from_plan} -> {self.to_plan}"


class OverageReport(models.Model):
    """Overage sent (or being sent) to a Stripe Billing Meter, one row per meter event.

    ``identifier`` is derived from tenant, month and the running total, so a retry of an unsent
    row, or two runs that saw the same usage, send the same identifier and Stripe counts it once.
    """

    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="overage_reports")
    month = models.DateField(help_text="First day of the month the usage belongs to.")
    identifier = models.CharField(max_length=100, unique=True)
    event_name = models.CharField(max_length=100)
    stripe_customer_id = models.CharField(max_length=100)
    units = models.PositiveBigIntegerField(help_text="Meter units this event adds.")
    total_units = models.PositiveBigIntegerField(help_text="The month's units reported up to and with this one.")
    overage = models.DecimalField(max_digits=20, decimal_places=10, help_text="USD overage the total stands for.")
    timestamp = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "month", "total_units"], name="one_report_per_month_total"),
        ]

    def __str__(self) -> str:
        return f"{self.identifier} +{self.units}"


# --- prepaid credits (billing/credits.py writes all three) -----------------------------------

CREDIT_MONEY = {"max_digits": 20, "decimal_places": 10}


class CreditEntryKind(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    TOP_UP = "top_up", "Auto top-up"
    USAGE = "usage", "Usage"
    REFUND = "refund", "Refund"
    ADJUSTMENT = "adjustment", "Adjustment"
    GRANT = "grant", "Included in the plan"


CREDITS_IN = [CreditEntryKind.PURCHASE, CreditEntryKind.TOP_UP, CreditEntryKind.GRANT]
CREDITS_OUT = [CreditEntryKind.USAGE, CreditEntryKind.REFUND]


class LedgerIsAppendOnly(Exception):
    """A credit entry is never changed or deleted: correct it with another entry."""


class CreditEntryQuerySet(models.QuerySet):
    # The collector behind a tenant's deletion deletes without these; anything else is refused.
    def update(self, **kwargs):
        raise LedgerIsAppendOnly("Credit entries are never updated; append an adjustment instead.")

    def delete(self):
        raise LedgerIsAppendOnly("Credit entries are never deleted; append an adjustment instead.")


class CreditEntry(models.Model):
    """One movement of a tenant's prepaid credits, in USD, signed. Append-only (refused here and,
    for updates, by a database trigger); the tenant's balance is the sum of its entries, and
    CreditAccount.balance caches that sum in the same transaction as each insert."""

    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="credit_entries")
    kind = models.CharField(max_length=16, choices=CreditEntryKind.choices)
    amount = models.DecimalField(**CREDIT_MONEY, help_text="USD; positive adds credits, negative spends them.")
    balance_after = models.DecimalField(**CREDIT_MONEY, editable=False)
    reason = models.CharField(max_length=300, blank=True)
    stripe_checkout_session_id = models.CharField(max_length=100, blank=True, editable=False)
    stripe_payment_intent_id = models.CharField(max_length=100, blank=True, editable=False)
    stripe_refund_id = models.CharField(max_length=100, blank=True, editable=False)
    receipt_url = models.URLField(max_length=500, blank=True, editable=False)
    period_start = models.DateTimeField(null=True, blank=True, editable=False, help_text="Usage debits: from.")
    period_end = models.DateTimeField(null=True, blank=True, editable=False, help_text="Usage debits: until.")
    # Text, not a key to the user: deleting an account must not have to update the ledger.
    actor = models.CharField(max_length=254, blank=True, editable=False,
                             help_text="Who made an adjustment (the operator's username).")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = CreditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit entries"
        indexes = [models.Index(fields=["tenant", "-created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(kind__in=CREDITS_IN, amount__gt=0) | models.Q(kind__in=CREDITS_OUT, amount__lt=0)
                           | (models.Q(kind=CreditEntryKind.ADJUSTMENT) & ~models.Q(amount=0)
                              & ~models.Q(reason=""))),
                name="credit_entry_sign_and_reason"),
            # Crediting a payment twice is impossible, whichever webhook or call gets there first.
            models.UniqueConstraint(fields=["stripe_payment_intent_id"],
                                    condition=models.Q(kind__in=CREDITS_IN) & ~models.Q(stripe_payment_intent_id=""),
                                    name="one_credit_per_payment_intent"),
            models.UniqueConstraint(fields=["stripe_refund_id"], condition=~models.Q(stripe_refund_id=""),
                                    name="one_entry_per_stripe_refund"),
            models.UniqueConstraint(fields=["tenant", "period_start", "period_end"],
                                    condition=models.Q(kind=CreditEntryKind.USAGE),
                                    name="one_usage_debit_per_period"),
            models.UniqueConstraint(fields=["tenant", "period_start"], condition=models.Q(kind=CreditEntryKind.GRANT),
                                    name="one_plan_grant_per_month"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.kind} {self.amount}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise LedgerIsAppendOnly("Credit entries are never updated; append an adjustment instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise LedgerIsAppendOnly("Credit entries are never deleted; append an adjustment instead.")


class CreditAccount(models.Model):
    """A tenant's credits: the ledger's balance (cached) and its auto top-up.

    ``top_up_armed`` marks a threshold crossing: the one conditional UPDATE that turns it off
    wins the right to charge for that crossing; an entry that lifts the balance back to the
    threshold turns it on again."""

    tenant = models.OneToOneField("gateway.Tenant", on_delete=models.CASCADE, related_name="credit_account")
    balance = models.DecimalField(**CREDIT_MONEY, default=Decimal("0"), editable=False)
    debited_through = models.DateTimeField(null=True, blank=True, editable=False,
                                           help_text="Usage up to here is debited (the last period's end).")
    # Moved by the request path (billing/spend_holds.py): what requests in flight hold, and what
    # settled and is not yet debited. Available credit = balance - spent_undebited - reserved.
    reserved = models.DecimalField(**CREDIT_MONEY, default=Decimal("0"), db_default=Decimal("0"), editable=False)
    spent_undebited = models.DecimalField(**CREDIT_MONEY, default=Decimal("0"), db_default=Decimal("0"),
                                          editable=False)
    auto_top_up = models.BooleanField(default=False)
    top_up_threshold = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"),
                                           help_text="USD: below this balance the saved card is charged.")
    top_up_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"),
                                        help_text="USD charged each time.")
    top_up_armed = models.BooleanField(default=True, editable=False)
    top_up_crossings = models.PositiveIntegerField(default=0, editable=False)
    stripe_payment_method_id = models.CharField(max_length=100, blank=True, editable=False)
    card_label = models.CharField(max_length=60, blank=True, editable=False, help_text="e.g. visa •••• 4242")
    top_up_stopped_reason = models.CharField(max_length=300, blank=True, editable=False)
    top_up_stopped_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.balance}"


class TopUpStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    DECLINED = "declined", "Declined"


class AutoTopUp(models.Model):
    """One charge of the saved card, one per threshold crossing (unique), keyed for Stripe by
    ``idempotency_key`` so a resend after a lost answer charges once."""

    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="auto_top_ups")
    crossing = models.PositiveIntegerField()
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    idempotency_key = models.CharField(max_length=100, unique=True)
    stripe_payment_method_id = models.CharField(max_length=100, blank=True, help_text="The card it charges.")
    status = models.CharField(max_length=16, choices=TopUpStatus.choices, default=TopUpStatus.PENDING)
    stripe_payment_intent_id = models.CharField(max_length=100, blank=True)
    failure = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "crossing"], name="one_top_up_per_crossing")]

    def __str__(self) -> str:
        return f"{self.idempotency_key} {self.status}"


# Spend alerts' tables, and the budgets per key and end user with their ledgers and holds, live in
# modules of their own (billing/alert_models.py, billing/budget_models.py); imported here so Django
# registers them.
from billing.alert_models import AlertDelivery, AlertSettings, BudgetAlert  # noqa: E402, F401
from billing.budget_models import BudgetSpend, SpendBudget, SpendHold  # noqa: E402, F401
