"""Budgets: what a scope may spend per period, and what it has spent. Spend alerts read them.

    Budget(scope, subject, amount, period)    scope "tenant", "key" or "end_user"; subject: which
                                              key or end user ("" for the tenant); amount USD;
                                              period "day", "week" or "month", in UTC
    period_bounds(period, now)                [start, end) of the period holding ``now``
    BudgetUse(budget, spent, start, end, label)   a budget and what was spent in that period
    budget_uses(now, tenant_ids=None)         every budget's use, per tenant (the alert job's read)
    BUDGET_SOURCES                            what budget_uses asks: one function per kind of budget

The tenant's monthly cap is one budget among them: ("tenant", "", its plan's
monthly_spend_limit, "month"), spent = the month's settled spend in the usage ledger
(MonthlySpend.settled; what requests in flight hold is not spend yet). The budgets a tenant admin
sets per API key and per end user are the others (billing/budget_models.py SpendBudget, enforced
by billing/spend_limits.py), spent = their period's BudgetSpend.settled.

To add a kind of budget (per key, per end user): write a source
``(now, tenant_ids | None) -> Iterable[tuple[tenant_id, BudgetUse]]`` that reads every budget of
that kind and its spend in the current period in a query or two for all tenants (``tenant_ids``
narrows it), and append it to BUDGET_SOURCES; the alert job then alerts on it with no other
change. A source yields only budgets with some spend: a budget with none reaches no threshold.
The settlement side may also hand one BudgetUse to billing.alerts.record_crossings() directly.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from billing.alert_models import BudgetPeriod, BudgetScope
from billing.budget_models import BudgetSpend
from usage.models import MonthlySpend


@dataclass(frozen=True, slots=True)
class Budget:
    scope: str  # BudgetScope
    subject: str  # the key's id or the end user's id; "" for the tenant
    amount: Decimal  # USD per period, more than 0
    period: str  # BudgetPeriod


@dataclass(frozen=True, slots=True)
class BudgetUse:
    budget: Budget
    spent: Decimal  # USD spent in [start, end)
    start: datetime
    end: datetime
    label: str = ""  # for people: "the monthly spend cap", "key 'ci'"

    def has_reached(self, threshold: int) -> bool:
        return self.spent * 100 >= self.budget.amount * threshold


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    day = now.astimezone(UTC).date()
    if period == BudgetPeriod.DAY:
        return midnight(day), midnight(day + timedelta(days=1))
    if period == BudgetPeriod.WEEK:  # ISO weeks: Monday to Monday
        monday = day - timedelta(days=day.weekday())
        return midnight(monday), midnight(monday + timedelta(days=7))
    if period == BudgetPeriod.MONTH:
        first = day.replace(day=1)
        return midnight(first), midnight((first + timedelta(days=32)).replace(day=1))
    raise ValueError(f"period must be one of {BudgetPeriod.values}, not {period!r}")


Source = Callable[[datetime, Iterable[int] | None], Iterable[tuple[int, BudgetUse]]]


def tenant_cap_uses(now: datetime, tenant_ids: Iterable[int] | None) -> Iterable[tuple[int, BudgetUse]]:
    """Each capped tenant's month against its plan's monthly_spend_limit (one query)."""
    start, end = period_bounds(BudgetPeriod.MONTH, now)
    cap = "tenant__subscription__plan__monthly_spend_limit"
    rows = MonthlySpend.objects.filter(month=start.date(), settled__gt=0, **{f"{cap}__gt": 0})
    if tenant_ids is not None:
        rows = rows.filter(tenant_id__in=list(tenant_ids))
    for tenant_id, settled, amount in rows.values_list("tenant_id", "settled", cap):
        budget = Budget(BudgetScope.TENANT, "", amount, BudgetPeriod.MONTH)
        yield tenant_id, BudgetUse(budget, settled, start, end, label="the monthly spend cap")


def set_budget_uses(now: datetime, tenant_ids: Iterable[int] | None) -> Iterable[tuple[int, BudgetUse]]:
    """Each key's and end user's budget against its current period's settled spend (one query)."""
    since = period_bounds(BudgetPeriod.MONTH, now)[0] - timedelta(days=7)  # no current period starts earlier
    rows = BudgetSpend.objects.filter(settled__gt=0, period_start__gte=since).select_related("budget__api_key")
    if tenant_ids is not None:
        rows = rows.filter(budget__tenant_id__in=list(tenant_ids))
    for row in rows:
        budget = row.budget
        start, end = period_bounds(budget.period, now)
        if row.period_start != start:
            continue  # a past period's ledger
        whose = f"API key '{budget.api_key.name}'" if budget.api_key else f"end user '{budget.subject}'"
        label = f"the budget of {whose}"
        yield budget.tenant_id, BudgetUse(Budget(budget.scope, budget.subject, budget.amount, budget.period),
                                          row.settled, start, end, label=label)


BUDGET_SOURCES: tuple[Source, ...] = (tenant_cap_uses, set_budget_uses)


# A period that ended this recently is still looked at: spend that crossed a threshold in its
# last moments, and requests admitted in it that settle after it ended, still alert (late).
LATE_SETTLEMENTS = timedelta(hours=1)


def budget_uses(now: datetime, tenant_ids: Iterable[int] | None = None) -> dict[int, list[BudgetUse]]:
    """Every budget with spend in its current period, or in one that ended within
    LATE_SETTLEMENTS, per tenant id."""
    uses: dict[int, list[BudgetUse]] = {}
    seen: set[tuple] = set()
    for moment in (now, now - LATE_SETTLEMENTS):
        for source in BUDGET_SOURCES:
            for tenant_id, use in source(moment, tenant_ids):
                if (tenant_id, use.budget, use.start) not in seen:
                    seen.add((tenant_id, use.budget, use.start))
                    uses.setdefault(tenant_id, []).append(use)
    return uses
