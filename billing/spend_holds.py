"""Spend held beside the tenant's cap: the budgets of a request's API key and end user, and a
prepaid tenant's credits. Plain SQL that SQLite and PostgreSQL share, run on the ledger writer
(usage/writer.py) like usage/recording.py.

    hold(request)          for each limit that applies, one conditional UPDATE (a budget's period
                           ledger: settled + reserved + amount <= the budget; the credit account:
                           balance - spent_undebited - reserved >= amount) and a SpendHold row; all
                           or none. None, or the first limit that refused (Exceeded)
    HOLDS.settle_held(cursor, settled)   at settlement, in its transaction (usage/batches.py):
                           DELETE the requests' holds; what each held leaves ``reserved`` and its
                           request's cost joins the budget's ``settled`` or the account's
                           ``spent_undebited`` (billing/credit_debits.py debits that from the balance)
    release(request_ids)   give holds back: their requests never ran
    sweep_holds(now=)      the background's catch-up: holds of requests recorded without them (the
                           reservation sweeper's records, a video job's) settled at the record's
                           cost; holds whose request left neither a record nor an open reservation
                           after RESERVATION_TTL_SECONDS given back

Why per request, not leased like the cap (usage/leases.py): a budget is small and a tenant's
requests spread over its keys and end users, so a slice would rarely serve more than a request or
two before going back; one conditional UPDATE per limit, committed with the writer's batch, is
exact on any number of nodes, and requests without such a limit never come here. A used-up limit
(nothing left) refuses even a request that costs nothing. Deleting a hold is what moves its money,
so settlement, release and the sweep each move it once, whoever gets there first. Rows are locked
in one order everywhere: budget periods by (budget id, period start), then credit accounts.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing.budgets import period_bounds

ZERO = Decimal(0)
CREDITS = "credits"  # Exceeded.scope of the credits
ROWS_PER_STATEMENT = 256

BUDGETS = """
SELECT id, scope, subject, amount, period FROM billing_spendbudget
WHERE tenant_id = %s AND ((scope = 'key' AND api_key_id = %s) OR (scope = 'end_user' AND subject = %s))
ORDER BY id"""
# Money is CAST: SQLite receives Decimals as text, and text compares greater than any number there.
# A sum is ROUNDed to the columns' 10 places before it is compared or shown: SQLite adds them as
# floats (0.2 + 0.1 > 0.3 there), so a request that exactly fits would be refused; on PostgreSQL,
# whose NUMERIC is exact, ROUND changes nothing.
TAKE_BUDGET = """
UPDATE billing_budgetspend SET reserved = reserved + CAST(%s AS NUMERIC)
WHERE budget_id = %s AND period_start = %s AND ROUND(settled + reserved, 10) < CAST(%s AS NUMERIC)
    AND ROUND(settled + reserved + CAST(%s AS NUMERIC), 10) <= CAST(%s AS NUMERIC)"""
OPEN_PERIOD = """
INSERT INTO billing_budgetspend (budget_id, period_start, settled, reserved) VALUES (%s, %s, 0, 0)
ON CONFLICT (budget_id, period_start) DO NOTHING"""
PERIOD_USED = "SELECT ROUND(settled + reserved, 10) FROM billing_budgetspend WHERE budget_id = %s AND period_start = %s"
TAKE_CREDITS = """
UPDATE billing_creditaccount SET reserved = reserved + CAST(%s AS NUMERIC)
WHERE tenant_id = %s AND ROUND(balance - spent_undebited - reserved, 10) > 0
    AND ROUND(balance - spent_undebited - reserved, 10) >= CAST(%s AS NUMERIC)"""
AVAILABLE = "SELECT ROUND(balance - spent_undebited - reserved, 10) FROM billing_creditaccount WHERE tenant_id = %s"
HOLD_ROW = "(%s, %s, %s, %s, CAST(%s AS NUMERIC), %s)"
INSERT_HOLDS = ("INSERT INTO billing_spendhold (request_id, tenant_id, budget_id, period_start, amount, created_at) "
                "VALUES ")
SETTLE_PERIOD = """
UPDATE billing_budgetspend SET settled = settled + CAST(%s AS NUMERIC), reserved = reserved - CAST(%s AS NUMERIC)
WHERE budget_id = %s AND period_start = %s"""
SETTLE_CREDITS = """
UPDATE billing_creditaccount SET spent_undebited = spent_undebited + CAST(%s AS NUMERIC),
    reserved = reserved - CAST(%s AS NUMERIC)
WHERE tenant_id = %s"""
RECORDED = """
SELECT DISTINCT h.request_id, r.cost FROM billing_spendhold h JOIN usage_usagerecord r ON r.request_id = h.request_id"""
ABANDONED = """
SELECT DISTINCT h.request_id FROM billing_spendhold h WHERE h.created_at < %s
    AND NOT EXISTS (SELECT 1 FROM usage_usagerecord r WHERE r.request_id = h.request_id)
    AND NOT EXISTS (SELECT 1 FROM usage_openreservation o WHERE o.request_id = h.request_id)"""


@dataclass(frozen=True, slots=True)
class HoldRequest:
    request_id: str
    tenant_id: int
    key_id: int | None
    end_user: str
    amount: Decimal
    prepaid: bool  # hold on the tenant's credits too
    now: datetime  # the budgets' periods are those holding this time


@dataclass(frozen=True, slots=True)
class Exceeded:
    """The limit that refused: a budget (scope "key" or "end_user", which subject, its amount per
    period, what its period has settled and holds, when the period ends) or the credits (scope
    CREDITS, what is available)."""

    scope: str
    subject: str = ""
    amount: Decimal = ZERO
    period: str = ""
    used: Decimal = ZERO
    resets_at: datetime | None = None
    available: Decimal = ZERO


class Refused(Exception):
    def __init__(self, exceeded: Exceeded):
        super().__init__(exceeded.scope)
        self.exceeded = exceeded


def decimal(value) -> Decimal:
    return Decimal(str(value))  # SQLite hands back decimals as floats


# --- admission -----------------------------------------------------------------------------

def hold(request: HoldRequest) -> Exceeded | None:
    """Hold ``request.amount`` on every limit that applies, or on none (module docstring)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:  # a savepoint: a refusal leaves nothing
            held = take_budgets(cursor, request)
            if request.prepaid:
                take_credits(cursor, request)
                held.append((None, None))
            insert_holds(cursor, request, held)
    except Refused as refused:
        return refused.exceeded
    return None


def take_budgets(cursor, request: HoldRequest) -> list[tuple[int, object]]:
    """The request's budgets, each held in its current period: [(budget id, period start)]."""
    adapt = connection.ops.adapt_datetimefield_value
    cursor.execute(BUDGETS, [request.tenant_id, request.key_id, request.end_user])
    held = []
    for budget_id, scope, subject, amount, period in cursor.fetchall():
        start, end = period_bounds(period, request.now)
        amount, period_start = decimal(amount), adapt(start)
        params = [request.amount, budget_id, period_start, amount, request.amount, amount]
        cursor.execute(TAKE_BUDGET, params)
        if not cursor.rowcount:  # refused, or the period's first request: make its row, then again
            cursor.execute(OPEN_PERIOD, [budget_id, period_start])
            cursor.execute(TAKE_BUDGET, params)
        if not cursor.rowcount:
            cursor.execute(PERIOD_USED, [budget_id, period_start])
            used = decimal(cursor.fetchone()[0])
            raise Refused(Exceeded(scope, subject, amount, period, used, end))
        held.append((budget_id, period_start))
    return held


def take_credits(cursor, request: HoldRequest) -> None:
    cursor.execute(TAKE_CREDITS, [request.amount, request.tenant_id, request.amount])
    if not cursor.rowcount:
        cursor.execute(AVAILABLE, [request.tenant_id])
        row = cursor.fetchone()
        raise Refused(Exceeded(CREDITS, available=ZERO if row is None else decimal(row[0])))


def insert_holds(cursor, request: HoldRequest, held: list[tuple[int | None, object]]) -> None:
    if not held:
        return
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = []
    for budget_id, period_start in held:
        params += [request.request_id, request.tenant_id, budget_id, period_start, request.amount, now]
    cursor.execute(INSERT_HOLDS + ", ".join([HOLD_ROW] * len(held)), params)


# --- settlement ----------------------------------------------------------------------------

def settle_holds(cursor, settled: list[tuple[str, Decimal]]) -> None:
    """Delete the requests' holds; each moves what it held to its request's cost (module docstring)."""
    costs = dict(settled)
    periods: dict[tuple, list[Decimal]] = {}  # (budget id, period start) -> [cost, held]
    accounts: dict[int, list[Decimal]] = {}  # tenant id -> [cost, held]
    for request_id, budget_id, period_start, tenant_id, amount in delete_holds(cursor, list(costs)):
        if budget_id is not None:
            moved = periods.setdefault((budget_id, period_start), [ZERO, ZERO])
        else:
            moved = accounts.setdefault(tenant_id, [ZERO, ZERO])
        moved[0] += costs[request_id]
        moved[1] += decimal(amount)
    for (budget_id, period_start), (cost, held) in sorted(periods.items(), key=lambda item: item[0]):
        cursor.execute(SETTLE_PERIOD, [cost, held, budget_id, period_start])
    for tenant_id, (cost, held) in sorted(accounts.items()):
        cursor.execute(SETTLE_CREDITS, [cost, held, tenant_id])


def delete_holds(cursor, request_ids: list[str]) -> list[tuple]:
    deleted = []
    ordered = sorted(request_ids)
    for start in range(0, len(ordered), ROWS_PER_STATEMENT):
        chunk = ordered[start:start + ROWS_PER_STATEMENT]
        cursor.execute(f"DELETE FROM billing_spendhold WHERE request_id IN ({', '.join(['%s'] * len(chunk))}) "
                       "RETURNING request_id, budget_id, period_start, tenant_id, amount", chunk)
        deleted += cursor.fetchall()
    return deleted


class SpendHolds:
    """usage.recording.HeldLimits for budgets and credits: set on a Reservation by admission
    (billing.spend_limits), called by its settlement."""

    def settle_held(self, cursor, settled: list[tuple[str, Decimal]]) -> None:
        settle_holds(cursor, settled)


HOLDS = SpendHolds()


def release(request_ids: list[str]) -> None:
    """Give the holds of requests that never ran back (on the writer, or in any transaction)."""
    with connection.cursor() as cursor:
        settle_holds(cursor, [(request_id, ZERO) for request_id in request_ids])


@transaction.atomic
def sweep_holds(*, now: datetime | None = None) -> tuple[int, int]:
    """Settle the holds of recorded requests at their records' cost, give back the abandoned;
    how many requests each (module docstring)."""
    now = now or timezone.now()
    cutoff = connection.ops.adapt_datetimefield_value(now - timedelta(seconds=settings.RESERVATION_TTL_SECONDS))
    with connection.cursor() as cursor:
        cursor.execute(RECORDED)
        recorded = [(request_id, decimal(cost)) for request_id, cost in cursor.fetchall()]
        cursor.execute(ABANDONED, [cutoff])
        abandoned = [(request_id, ZERO) for (request_id,) in cursor.fetchall()]
        if recorded or abandoned:
            settle_holds(cursor, recorded + abandoned)
    return len(recorded), len(abandoned)
