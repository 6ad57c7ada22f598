"""Budgets a tenant sets below its monthly cap, and the money they hold (imported by
billing/models.py; billing/spend_budgets.py edits the budgets, billing/spend_holds.py moves their
money on the ledger writer).

    SpendBudget   an amount per period (day, week or month, in UTC) for one API key or one end user:
                  the alerts' Budget(scope, subject, amount, period) of billing/budgets.py, stored
    BudgetSpend   one budget's ledger for one period: what settled, and what requests in flight
                  hold (admission adds to ``reserved`` with one conditional UPDATE)
    SpendHold     what one request holds on one budget's period, or on its tenant's prepaid credits
                  (no budget): the request's settlement deletes it, and whoever deletes it moves its
                  money, so a hold is settled or given back exactly once
"""

from decimal import Decimal

from django.db import models
from django.utils import timezone

from billing.alert_models import BudgetPeriod, BudgetScope

LEDGER_MONEY = {"max_digits": 20, "decimal_places": 10, "default": Decimal("0"), "db_default": Decimal("0")}
MAX_END_USER_CHARS = 256  # as UsageRecord.end_user


class SpendBudget(models.Model):
    """What one key or one end user may spend per period. A key's has ``api_key`` and its id as
    ``subject``; an end user's has the id the client sends (the body's ``user``, x-tollgate-user)."""

    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="spend_budgets")
    scope = models.CharField(max_length=16, choices=BudgetScope.choices)
    subject = models.CharField(max_length=MAX_END_USER_CHARS, help_text="The key's id, or the end user's id.")
    api_key = models.OneToOneField("gateway.ApiKey", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="spend_budget")
    amount = models.DecimalField(max_digits=12, decimal_places=2, help_text="USD per period, more than 0.")
    period = models.CharField(max_length=8, choices=BudgetPeriod.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "subject"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "scope", "subject"], name="one_budget_per_key_or_end_user"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="budget_amount_positive"),
            models.CheckConstraint(
                condition=(models.Q(scope=BudgetScope.KEY, api_key__isnull=False)
                           | models.Q(scope=BudgetScope.END_USER, api_key__isnull=True)),
                name="budget_is_a_keys_or_an_end_users"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.scope}:{self.subject} ${self.amount}/{self.period}"


class BudgetSpend(models.Model):
    """A budget's ledger for the period starting at ``period_start``; made by its first request."""

    budget = models.ForeignKey(SpendBudget, on_delete=models.CASCADE, related_name="ledger")
    period_start = models.DateTimeField()
    settled = models.DecimalField(**LEDGER_MONEY)
    reserved = models.DecimalField(**LEDGER_MONEY)

    class Meta:
        ordering = ["-period_start"]
        constraints = [models.UniqueConstraint(fields=["budget", "period_start"], name="one_ledger_per_budget_period")]

    def __str__(self) -> str:
        return f"{self.budget_id} from {self.period_start:%Y-%m-%d}: {self.settled} + {self.reserved}"


class SpendHold(models.Model):
    """One request's amount held on a budget's period (``budget``, ``period_start``) or, without
    a budget, on its tenant's credits (CreditAccount.reserved)."""

    request_id = models.CharField(max_length=64, db_index=True)
    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="+")
    budget = models.ForeignKey(SpendBudget, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    period_start = models.DateTimeField(null=True, blank=True)
    amount = models.DecimalField(max_digits=20, decimal_places=10)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.request_id} {self.budget_id or 'credits'} {self.amount}"
