"""Admission against the limits below and beside a tenant's monthly cap: the budget of the
request's API key, the budget of its end user (the body's ``user`` or x-tollgate-user) and, on a
prepaid plan, the tenant's credits. billing.entitlements calls it before the cap's reservation.

    await hold_credits(caller, reservation)   past the cap of a plan with credit_overage: the credits
                                      alone (the request is paid from them)
    await hold(caller, reservation)   hold reservation.amount on every limit that applies, as one
                                      job on the ledger writer (billing/spend_holds.py); raises
                                      OverLimit naming the limit and when it resets, or where to
                                      buy credits. Sets reservation.limits: settlement moves it.
    release(reservation)              give the holds back (the request will not run after all)
    await is_limited(caller, end_user)   whether any limit applies: prepaid, or this process's
                                      snapshot of the tenant's budgets (kept KEY_CACHE_SECONDS, as
                                      keys and plans are), so a request with none costs no query
    forget_limits(tenant_id) / forget()   drop snapshots (a budget changed; tests)
    clock()                           the time whose periods budgets are held in (tests replace it)

A budget set or removed applies to the next request in the process that saved it, and within
KEY_CACHE_SECONDS in the others; what a budget allows is read by the hold itself, so an amount
changed applies to the next hold everywhere.
"""

import asyncio
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from billing import spend_holds
from billing.alert_models import BudgetPeriod, BudgetScope
from billing.budget_models import SpendBudget
from billing.refusals import DO_NOT_RETRY
from billing.spend_holds import CREDITS, Exceeded, HoldRequest
from providers.read_ahead import ReadAhead
from usage.recording import Reservation
from usage.writer import JOB_TIMEOUT_SECONDS, writer

if TYPE_CHECKING:
    from billing.entitlements import Caller

SNAPSHOTS_MAX = 10_000
USD_SHOWN = Decimal("0.000001")
CENTS = Decimal("0.01")
PERIOD_WORDS = {BudgetPeriod.DAY: "day", BudgetPeriod.WEEK: "week", BudgetPeriod.MONTH: "month"}


def clock():
    return timezone.now()


class OverLimit(Exception):
    """A limit refused the request: a 429 insufficient_quota whose message says which limit and
    what to do; ``retry_after`` seconds until a budget resets (None for credits)."""

    def __init__(self, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        # The SDKs would retry a 429 at once: pointless before the reset or a purchase.
        self.headers = dict(DO_NOT_RETRY)


# --- which requests have limits ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TenantBudgets:
    key_ids: frozenset[int]  # the keys with a budget
    end_users: bool  # any end user has one


def load_budgets(tenant_id: int) -> TenantBudgets:
    budgets = SpendBudget.objects.filter(tenant_id=tenant_id)
    key_ids = frozenset(budgets.filter(scope=BudgetScope.KEY).values_list("api_key_id", flat=True))
    end_users = budgets.filter(scope=BudgetScope.END_USER).exists()
    return TenantBudgets(key_ids, end_users)


# Requests that miss a tenant's snapshot at once share one read, and a tenant in steady use has
# it read again before it expires (providers/read_ahead.py): no request waits for the database.
_snapshots: ReadAhead[int, TenantBudgets] = ReadAhead(
    "spend budgets of tenant", load_budgets, seconds=lambda: settings.KEY_CACHE_SECONDS, max_entries=SNAPSHOTS_MAX)


async def is_limited(caller: "Caller", end_user: str) -> bool:
    if caller.plan.prepaid:
        return True
    budgets = await _snapshots.get(caller.tenant_id)
    return caller.key_id in budgets.key_ids or (bool(end_user) and budgets.end_users)


def forget_limits(tenant_id: int) -> None:
    _snapshots.forget(tenant_id)


def forget() -> None:
    _snapshots.forget_all()


# --- holding -------------------------------------------------------------------------------

async def hold(caller: "Caller", reservation: Reservation) -> None:
    """Hold the request's most cost on its key's and end user's budgets and the tenant's credits
    (those that apply), all or none; OverLimit names the first that refused."""
    if not await is_limited(caller, reservation.end_user):
        return
    await hold_on(caller, reservation, HoldRequest(reservation.request_id, caller.tenant_id, caller.key_id,
                                                   reservation.end_user, reservation.amount, caller.plan.prepaid,
                                                   clock()))


async def hold_credits(caller: "Caller", reservation: Reservation) -> None:
    """Past the monthly cap of a plan with credit_overage: hold the request on the tenant's credits
    alone (its budgets, if any, hold it already); OverLimit when they do not cover it."""
    await hold_on(caller, reservation, HoldRequest(reservation.request_id, caller.tenant_id, None, "",
                                                   reservation.amount, True, clock()))


async def hold_on(caller: "Caller", reservation: Reservation, request: HoldRequest) -> None:
    pending = writer.submit(spend_holds.hold, request)
    try:
        exceeded = await asyncio.wait_for(asyncio.shield(pending), JOB_TIMEOUT_SECONDS)
    except BaseException:  # the client left, or the writer is stuck: what it holds, if anything, goes back
        pending.add_done_callback(lambda done: release_if_held(done, request.request_id))
        raise
    if exceeded is not None:
        raise over_limit(caller, reservation, exceeded)
    reservation.limits = spend_holds.HOLDS


def release_if_held(done: asyncio.Future, request_id: str) -> None:
    if not done.cancelled() and done.exception() is None and done.result() is None:
        writer.post(spend_holds.release, [request_id])


def release(reservation: Reservation) -> None:
    if reservation.limits is not None:
        reservation.limits = None
        writer.post(spend_holds.release, [reservation.request_id])


# --- refusals ------------------------------------------------------------------------------

def usd(amount: Decimal) -> str:
    return f"${amount.quantize(USD_SHOWN)}"


def over_limit(caller: "Caller", reservation: Reservation, exceeded: Exceeded) -> OverLimit:
    most = usd(reservation.amount)
    if exceeded.scope == CREDITS:
        link = f"{caller.base_url}/t/{caller.tenant_slug}/billing/"
        if exceeded.available <= 0:
            state = "your prepaid credits are used up"
        else:
            state = f"your prepaid credits ({usd(exceeded.available)} available) do not cover this request"
        if not caller.plan.prepaid:  # past the cap of a plan whose overage credits pay
            state = (f"plan {caller.plan.name} allows ${caller.plan.monthly_spend_limit} of spend per month, past "
                     f"which requests are paid from credits, and {state}")
        return OverLimit(f"You exceeded your current quota: {state}, and this request could cost up to {most}. "
                         f"Buy credits at {link}, or lower max_tokens.")
    if exceeded.scope == BudgetScope.KEY:
        whose, raise_it = f"API key '{caller.key_name}'", "the key's budget"
    else:
        whose, raise_it = f"end user '{exceeded.subject}'", "this end user's budget"
    resets = exceeded.resets_at
    return OverLimit(
        f"You exceeded your current quota: {whose} has a budget of ${exceeded.amount.quantize(CENTS)} per "
        f"{PERIOD_WORDS.get(exceeded.period, exceeded.period)}, {usd(exceeded.used)} of it is spent or held by "
        f"requests in flight, and this request could cost up to {most}. The budget resets at "
        f"{resets:%Y-%m-%d %H:%M} UTC. Lower max_tokens, wait for the reset, or ask a tenant admin to raise "
        f"{raise_it}.", retry_after=max(1, math.ceil((resets - clock()).total_seconds())))
