"""Budgets per API key and per end user, as a tenant admin sets them (the dashboard's keys and
budgets pages, the management API) and as they stand. billing/spend_limits.py enforces them.

    set_key_budget(api_key, amount=, period=)          a key's budget; amount None removes it
    add_end_user_budget(tenant, end_user=, amount=, period=)   BudgetExists if that end user has one
    save_end_user_budget(tenant, end_user=, amount=, period=)  made, or that end user's changed
    change_budget(budget, amount=, period=)             what is given changes
    remove_budget(budget)
    check_amount(value) / check_period(value) / check_end_user(value)   validation (InvalidBudget)
    standings(budgets, now=)                           each budget with what its current period
                                                       settled and holds, and when it resets

A change applies to the next request in this process at once and in other workers within
KEY_CACHE_SECONDS (spend_limits' snapshot). Changing a budget's period starts the new period's
ledger; lowering its amount refuses the requests that would pass it from the next one on.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction

from billing import spend_limits
from billing.alert_models import BudgetPeriod, BudgetScope
from billing.budget_models import MAX_END_USER_CHARS, BudgetSpend, SpendBudget
from billing.budgets import period_bounds
from billing.spend_limits import forget_limits

ZERO = Decimal(0)
CENTS = Decimal("0.01")
MOST = Decimal("9999999999.99")  # the amount column's largest


class InvalidBudget(Exception):
    """A budget the form refuses; the message says what to change, ``field`` which field."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


class BudgetExists(Exception):
    pass


def check_amount(value) -> Decimal:
    """USD more than 0, in cents ("5", "5.00", Decimal("5")); InvalidBudget otherwise."""
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        raise InvalidBudget("The amount is a number of USD, e.g. 5.00.", field="amount") from None
    if not amount.is_finite() or amount < CENTS or amount > MOST:
        raise InvalidBudget(f"The amount is from $0.01 to ${MOST}.", field="amount")
    if amount != amount.quantize(CENTS):
        raise InvalidBudget("The amount is in whole cents, e.g. 5.25.", field="amount")
    return amount.quantize(CENTS)


def check_period(value: str) -> str:
    if value not in BudgetPeriod.values:
        raise InvalidBudget(f"The period is one of {', '.join(BudgetPeriod.values)}.", field="period")
    return value


def check_end_user(value: str) -> str:
    end_user = value.strip()
    if not end_user or len(end_user) > MAX_END_USER_CHARS or "\x00" in end_user:
        raise InvalidBudget(f"The end user is the id your requests send as 'user' or x-tollgate-user: 1 to "
                            f"{MAX_END_USER_CHARS} characters.", field="end_user")
    return end_user


def changed(tenant_id: int) -> None:
    """The tenant's budgets changed: this process's snapshot goes now and again at commit."""
    forget_limits(tenant_id)
    transaction.on_commit(lambda: forget_limits(tenant_id))


@transaction.atomic
def set_key_budget(api_key, *, amount, period: str = BudgetPeriod.MONTH) -> SpendBudget | None:
    """The key's budget, made or changed; ``amount`` None removes it (and returns None)."""
    changed(api_key.tenant_id)
    if amount is None:
        SpendBudget.objects.filter(api_key=api_key).delete()
        return None
    budget, _ = SpendBudget.objects.update_or_create(
        api_key=api_key, defaults={"tenant_id": api_key.tenant_id, "scope": BudgetScope.KEY,
                                   "subject": str(api_key.pk), "amount": check_amount(amount),
                                   "period": check_period(period)})
    return budget


def add_end_user_budget(tenant, *, end_user: str, amount, period: str) -> SpendBudget:
    budget = SpendBudget(tenant=tenant, scope=BudgetScope.END_USER, subject=check_end_user(end_user),
                         amount=check_amount(amount), period=check_period(period))
    try:
        with transaction.atomic():
            changed(tenant.pk)
            budget.save()
    except IntegrityError:
        raise BudgetExists(f"End user '{budget.subject}' has a budget already: change that one.") from None
    return budget


@transaction.atomic
def save_end_user_budget(tenant, *, end_user: str, amount, period: str) -> SpendBudget:
    changed(tenant.pk)
    budget, _ = SpendBudget.objects.update_or_create(
        tenant=tenant, scope=BudgetScope.END_USER, subject=check_end_user(end_user),
        defaults={"amount": check_amount(amount), "period": check_period(period)})
    return budget


@transaction.atomic
def change_budget(budget: SpendBudget, *, amount=None, period: str | None = None) -> SpendBudget:
    if amount is not None:
        budget.amount = check_amount(amount)
    if period is not None:
        budget.period = check_period(period)
    changed(budget.tenant_id)
    budget.save(update_fields=["amount", "period", "updated_at"])
    return budget


@transaction.atomic
def remove_budget(budget: SpendBudget) -> None:
    changed(budget.tenant_id)
    budget.delete()


@dataclass(frozen=True, slots=True)
class Standing:
    budget: SpendBudget
    spent: Decimal  # settled in the current period
    held: Decimal  # held by requests in flight
    period_start: datetime
    resets_at: datetime

    @property
    def remaining(self) -> Decimal:
        return max(self.budget.amount - self.spent - self.held, ZERO)


def standings(budgets: list[SpendBudget], *, now: datetime | None = None) -> list[Standing]:
    """Each budget as its current period stands (one query); the period of ``now``, by default
    the one admission holds in (spend_limits.clock)."""
    now = now or spend_limits.clock()
    bounds = {budget.pk: period_bounds(budget.period, now) for budget in budgets}
    ledgers = {(row.budget_id, row.period_start): row for row in BudgetSpend.objects.filter(
        budget_id__in=list(bounds), period_start__in={start for start, _ in bounds.values()})}
    found = []
    for budget in budgets:
        start, end = bounds[budget.pk]
        row = ledgers.get((budget.pk, start))
        found.append(Standing(budget, row.settled if row else ZERO, row.reserved if row else ZERO, start, end))
    return found
