from decimal import Decimal
from fnmatch import fnmatchcase

from django.conf import settings
from django.db import models
from django.utils import timezone

from providers.models import Capability


class Plan(models.Model):
    """What a tenant may do: models, capabilities, request rate and monthly spend."""

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    requests_per_minute = models.PositiveIntegerField(default=60)
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
    response_retention_days = models.PositiveSmallIntegerField(
        default=30, help_text="Days stored /v1/responses are kept before `purge_responses` deletes them.")
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["stripe_price_id"], condition=~models.Q(stripe_price_id=""),
                                    name="one_plan_per_stripe_price"),
        ]

    def __str__(self) -> str:
        return self.name

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
