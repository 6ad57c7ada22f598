"""Spend alerts' tables (imported by billing/models.py; billing/alerts.py and
billing/alert_delivery.py write them).

    AlertSettings   a tenant's thresholds, webhook URL and signing secret (one row, made on first save)
    BudgetAlert     one threshold of one budget reached in one period: the unique row that makes
                    each alert happen once, whichever process sees it first
    AlertDelivery   one mail or webhook POST of an event, retried with backoff until it succeeds
                    or gives up; the dashboard's delivery log
"""

import json
from decimal import Decimal

from django.db import models
from django.utils import timezone

DEFAULT_THRESHOLDS = (50, 80, 100)
ALERT_MONEY = {"max_digits": 20, "decimal_places": 10}


def default_thresholds() -> list[int]:
    return list(DEFAULT_THRESHOLDS)


class BudgetScope(models.TextChoices):
    TENANT = "tenant", "Tenant"
    KEY = "key", "API key"
    END_USER = "end_user", "End user"


class BudgetPeriod(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"


class AlertSettings(models.Model):
    """What a tenant is alerted about and where. A tenant without a row has the defaults:
    50, 80 and 100 % of each budget, mail only."""

    tenant = models.OneToOneField("gateway.Tenant", on_delete=models.CASCADE, related_name="alert_settings")
    thresholds = models.JSONField(default=default_thresholds, blank=True,
                                  help_text="Percentages of each budget, e.g. [50, 80, 100]; empty = no alerts.")
    webhook_url = models.URLField(max_length=500, blank=True)
    # Encrypted like provider credentials (providers/encryption.py): it must be read to sign.
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    webhook_secret_hint = models.CharField(max_length=8, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "alert settings"

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.thresholds}"


class BudgetAlert(models.Model):
    """A threshold of a budget reached in one period. Inserting it is the claim: the unique
    constraint lets one process win, so each alert is mailed and posted once. ``notified`` is
    False for a threshold passed in the same check as a higher one (only the highest is sent)."""

    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="budget_alerts")
    scope = models.CharField(max_length=16, choices=BudgetScope.choices)
    subject = models.CharField(max_length=200, blank=True, help_text="Which key or end user; empty for the tenant.")
    period = models.CharField(max_length=8, choices=BudgetPeriod.choices)
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField(help_text="Percent of the budget.")
    amount = models.DecimalField(**ALERT_MONEY, help_text="The budget in USD when it was reached.")
    spent = models.DecimalField(**ALERT_MONEY, default=Decimal(0), help_text="USD spent when it was seen.")
    notified = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The budget is (scope, subject, amount, period): a cap that changes mid-month (an
        # upgrade) is a new budget whose thresholds alert afresh.
        constraints = [models.UniqueConstraint(
            fields=["tenant", "scope", "subject", "amount", "period", "threshold", "period_start"],
            name="one_alert_per_threshold_and_period")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.scope}:{self.subject} {self.threshold}% from {self.period_start:%Y-%m-%d}"


class DeliveryChannel(models.TextChoices):
    MAIL = "mail", "Mail"
    WEBHOOK = "webhook", "Webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed"


class AlertDelivery(models.Model):
    """One event sent one way. ``payload`` is the webhook body exactly as signed (the same on
    every attempt and on a redelivery, which is a new row with the same ``event_id``). A sender
    claims an attempt by moving ``next_attempt_at`` forward with a conditional UPDATE."""

    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="alert_deliveries")
    alert = models.ForeignKey(BudgetAlert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=8, choices=DeliveryChannel.choices)
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=64)
    payload = models.TextField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Empty once it succeeded or gave up.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    url = models.CharField(max_length=500, blank=True, help_text="Where the last attempt went.")
    redelivery_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "alert deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"]), models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.event_id} {self.channel} {self.status}"

    @property
    def summary(self) -> str:
        """What the event says, for the log: "80% of the monthly spend cap", else its type."""
        data = json.loads(self.payload).get("data", {})
        if "threshold" not in data:
            return self.event_type
        return f"{data['threshold']}% of {data['budget'].get('label') or 'a budget'}"
