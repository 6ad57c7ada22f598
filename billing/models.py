from decimal import Decimal
from fnmatch import fnmatchcase

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
    stripe_price_id = models.CharField(max_length=100, blank=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "slug"]

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
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.tenant} on {self.plan}"
