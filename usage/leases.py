"""Budget leases: this process's slices of tenants' monthly budgets, reserved against in memory.

    book                 this process's leases: one open lease per (tenant, month), its requests
    Lease                granted (its amount in the database, as far as this process knows),
                         held (by the requests admitted from it and not yet settled)
On the ledger writer's thread (usage/writer.py), inside its transaction:
    grant(lease, need, cap)    add a slice to the lease: one conditional UPDATE of the month's
                               ledger (settled + reserved + slice <= cap), then the lease's row
    pay(cursor, ...)           settlements' costs out of their lease (usage/batches.py)
    close(leases)              give back what is left: DELETE the row, its amount off reserved
    renew_held()               mark this process's leases alive (the writer's housekeeping)
    reclaim_stale(cursor)      give back the leases of dead processes (usage/recovery.py)

The ledger always reads: reserved = the leases' amounts + the open rows not from a lease. A
slice is at most BUDGET_LEASE_SLICE and at most a tenth of what the cap has left (the headroom),
and never less than the request that asked needs; near the cap that makes a slice exactly one
request's reservation, so the cap is exact however many processes share it. The book's state
is changed under its lock only, and what a transaction did only once it committed (on_commit).
"""

import logging
import os
import socket
import threading
import time
import uuid
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from usage.direct_sql import direct_cursor
from usage.recording import GIVE_BACK, OPEN_MONTH

log = logging.getLogger(__name__)

ZERO = Decimal(0)
PRECISION = Decimal("1e-10")  # the money columns' decimal places
HEADROOM_SHARE = 10  # a slice takes at most this fraction (1/10) of what the cap has left


class LeaseLost(Exception):
    """The lease's row is gone: the sweeper took it for a dead process's. Start a new one."""


class Lease:
    """One process's slice of one tenant-month. Fields change under the book's lock."""

    __slots__ = ("token", "tenant_id", "month", "cap", "granted", "held", "holds", "active", "waiting",
                 "granting", "written", "retired", "closing", "closed", "idle_since", "last_slice")

    def __init__(self, tenant_id: int, month: date, cap: Decimal | None, token: str | None = None):
        self.token = token or uuid.uuid4().hex
        self.tenant_id, self.month, self.cap = tenant_id, month, cap
        self.granted = ZERO  # what the lease's row holds, as of the last commit
        self.held = ZERO  # the sum of holds
        self.holds: dict[str, tuple[Decimal, float]] = {}  # request id -> (amount, admitted at), till settled
        self.active: set[str] = set()  # requests admitted whose settlement is not on its way yet
        self.waiting = 0  # admissions waiting for a grant
        self.granting = None  # the grant on its way (an asyncio future), at most one
        self.written = token is not None  # its row exists (or existed): one named by token was read
        self.retired = False  # takes no new request: lost, or the plan's cap changed
        self.closing = False  # given back or about to be: no request left and none to come
        self.closed = False
        self.idle_since: float | None = None
        self.last_slice = ZERO  # the last grant's size: a top-up ahead of need only after a full slice

    def available(self) -> Decimal:
        return self.granted - self.held

    def in_use(self) -> bool:
        return bool(self.active) or self.waiting > 0

    def is_low(self) -> bool:
        """Worth topping up before it runs dry: half a full slice or less left (never near the
        cap, where each request takes its own exact slice)."""
        return (not self.retired and not self.closing and self.granting is None
                and self.last_slice >= slice_size() and self.available() * 2 < self.last_slice)


def slice_size() -> Decimal:
    return settings.BUDGET_LEASE_SLICE


def holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


class LeaseBook:
    """This process's leases. A request joins its tenant's open lease, holds its amount when the
    lease has room, and finishes when its settlement is on its way; the last to finish closes
    the lease (or leaves it idle for BUDGET_LEASE_IDLE_SECONDS)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: dict[tuple[int, date], Lease] = {}
        self.leases: set[Lease] = set()  # every lease not closed yet: open, or retired and in use
        self.headroom: dict[tuple[int, date], tuple[Decimal | None, Decimal]] = {}  # (cap, headroom) hints

    def join(self, tenant_id: int, month: date, cap: Decimal | None) -> tuple[Lease, Lease | None]:
        """The tenant's open lease (a new one if none, or the plan's cap changed), waited on; and
        the lease the changed cap retired if its row is to be given back now (it was idle: its
        slice must not count against the new cap's grant, so close it before asking for one)."""
        with self.lock:
            lease, retired = self.open.get((tenant_id, month)), None
            if lease is not None and lease.cap != cap:
                retired = lease if self._retire(lease) else None
                lease = None
            if lease is None:
                lease = self.open[(tenant_id, month)] = Lease(tenant_id, month, cap)
                self.leases.add(lease)
            lease.waiting += 1
            lease.idle_since = None
            return lease, retired

    def hold(self, lease: Lease, request_id: str, amount: Decimal) -> bool:
        """Hold ``amount`` for the request if the lease has room (in memory: no database)."""
        with self.lock:
            if lease.retired or lease.closing or lease.available() < amount:
                return False
            lease.held += amount
            lease.holds[request_id] = (amount, time.monotonic())
            lease.active.add(request_id)
            lease.waiting -= 1
            return True

    def leave(self, lease: Lease) -> bool:
        """A waiting admission gives up (refused, cancelled). True: close the lease's row now."""
        with self.lock:
            lease.waiting -= 1
            return self._settle_down(lease)

    def finish(self, lease: Lease, request_id: str, *, released: bool = False) -> bool:
        """The request is done with the lease: its settlement is on its way (its hold goes once
        that commits: settled), or it was ``released`` unsettled (its hold goes now). True: close
        the lease's row now (the settlement, or the release, carries the close)."""
        with self.lock:
            lease.active.discard(request_id)
            if released and request_id in lease.holds:
                lease.held -= lease.holds.pop(request_id)[0]
            return self._settle_down(lease)

    def settled(self, lease: Lease, request_id: str, cost: Decimal) -> None:
        """A settlement committed: its cost came out of the lease, its hold is let go."""
        with self.lock:
            hold = lease.holds.pop(request_id, None)
            if hold is not None:
                lease.held -= hold[0]
            lease.granted -= cost

    def credit(self, lease: Lease, amount: Decimal, headroom: Decimal | None) -> None:
        """A grant committed."""
        with self.lock:
            lease.granted += amount
            lease.written = True
            lease.last_slice = amount
            if headroom is not None:
                self.headroom[(lease.tenant_id, lease.month)] = (lease.cap, headroom)

    def lost(self, lease: Lease) -> None:
        """The lease's row is gone, and not by this process's doing."""
        with self.lock:
            if not lease.closing:
                log.warning("the budget lease of tenant %s was given back by a sweeper; taking a new one",
                            lease.tenant_id)
            self._retire(lease)
            lease.closing = lease.closed = True
            self.leases.discard(lease)

    def closed(self, leases: list[Lease]) -> None:
        with self.lock:
            for lease in leases:
                lease.closed = True
                self.leases.discard(lease)

    def find(self, token: str) -> Lease | None:
        with self.lock:
            return next((lease for lease in self.leases if lease.token == token), None)

    def headroom_hint(self, lease: Lease) -> Decimal | None:
        with self.lock:
            cap, headroom = self.headroom.get((lease.tenant_id, lease.month), (None, None))
            return headroom if cap == lease.cap else None

    def to_close(self, *, everything: bool = False) -> list[Lease]:
        """The leases to give back now, marked closing: those idle past BUDGET_LEASE_IDLE_SECONDS,
        any whose closing has not committed, and at shutdown (``everything``) every one."""
        deadline = time.monotonic() - settings.BUDGET_LEASE_IDLE_SECONDS
        with self.lock:
            for lease in list(self.leases):
                idle = not lease.in_use() and lease.idle_since is not None and lease.idle_since <= deadline
                if everything or idle:
                    lease.closing = True
                    self._retire(lease)
            self.leases -= {lease for lease in self.leases if lease.closing and not lease.written}
            return [lease for lease in self.leases if lease.closing]

    def next_idle_deadline(self) -> float | None:
        with self.lock:
            times = [lease.idle_since for lease in self.open.values() if lease.idle_since is not None]
        return min(times) + settings.BUDGET_LEASE_IDLE_SECONDS if times else None

    def renewable(self) -> list[Lease]:
        with self.lock:
            return [lease for lease in self.leases if lease.written and not lease.closing]

    def forget_stale_holds(self) -> None:
        """Let go of holds older than RESERVATION_TTL_SECONDS: their request died unsettled (before
        its meter was made, or its settlement was lost); the sweeper records it from its open row."""
        horizon = time.monotonic() - settings.RESERVATION_TTL_SECONDS
        with self.lock:
            for lease in list(self.leases):
                stale = [request_id for request_id, (_, since) in lease.holds.items() if since < horizon]
                for request_id in stale:
                    lease.held -= lease.holds.pop(request_id)[0]
                    lease.active.discard(request_id)
                if stale:
                    log.warning("let go of %d holds of tenant %s never settled", len(stale), lease.tenant_id)
                    self._settle_down(lease)

    def forget(self) -> None:
        """Drop every lease (tests: the database they were in is gone)."""
        with self.lock:
            self.open.clear()
            self.leases.clear()
            self.headroom.clear()

    def _retire(self, lease: Lease) -> bool:
        """Take no new request on the lease; True if nobody uses it and its row needs closing."""
        lease.retired = True
        if self.open.get((lease.tenant_id, lease.month)) is lease:
            del self.open[(lease.tenant_id, lease.month)]
        return self._settle_down(lease)

    def _settle_down(self, lease: Lease) -> bool:
        """Close a lease nobody uses any more, unless it may idle; True if its row needs closing.
        Only a lease far from the cap idles (its last grant was a full slice): near it, what a
        lease holds is a request's worth another process may need, and goes back at once."""
        if lease.closing or lease.in_use():
            return False
        if settings.BUDGET_LEASE_IDLE_SECONDS > 0 and not lease.retired and lease.last_slice >= slice_size():
            lease.idle_since = time.monotonic()
            return False
        lease.closing = True
        if self.open.get((lease.tenant_id, lease.month)) is lease:
            del self.open[(lease.tenant_id, lease.month)]
        if not lease.written:
            lease.closed = True
            self.leases.discard(lease)
        return lease.written


book = LeaseBook()


# --- on the ledger writer's thread ----------------------------------------------------------

HEADROOM = "SELECT settled, reserved FROM usage_monthlyspend WHERE tenant_id = %s AND month = %s"
# The sum ROUNDed to the columns' 10 places: SQLite adds them as floats (0.2 + 0.1 > 0.3 there),
# which would refuse a slice that exactly fits; PostgreSQL's NUMERIC is exact, ROUND a no-op.
TAKE = """
UPDATE usage_monthlyspend SET reserved = reserved + CAST(%s AS NUMERIC) WHERE tenant_id = %s AND month = %s
    AND (CAST(%s AS NUMERIC) IS NULL OR ROUND(settled + reserved + CAST(%s AS NUMERIC), 10) <= CAST(%s AS NUMERIC))
RETURNING settled, reserved"""
# ON CONFLICT: a second first grant of the same lease (from another event loop of the process).
INSERT_LEASE = """
INSERT INTO usage_budgetlease (token, tenant_id, month, amount, holder, created_at, renewed_at)
VALUES (%s, %s, %s, CAST(%s AS NUMERIC), %s, %s, %s)
ON CONFLICT (token) DO UPDATE SET amount = usage_budgetlease.amount + excluded.amount"""
GROW_LEASE = "UPDATE usage_budgetlease SET amount = amount + CAST(%s AS NUMERIC), renewed_at = %s WHERE token = %s"
# Not a sign of life: the sweeper pays a dead process's requests out of its lease too.
PAY_FROM_LEASE = "UPDATE usage_budgetlease SET amount = amount - CAST(%s AS NUMERIC) WHERE token = %s"
CLOSE_LEASE = "DELETE FROM usage_budgetlease WHERE token = %s RETURNING amount"
STALE_LEASES = "DELETE FROM usage_budgetlease WHERE renewed_at < %s RETURNING tenant_id, month, amount"


def decimal(value) -> Decimal:
    return Decimal(str(value))  # SQLite hands back decimals as floats


def slice_for(need: Decimal, cap: Decimal | None, headroom: Decimal | None) -> Decimal:
    """A full slice far from the cap, a tenth of the headroom nearer, just ``need`` at the end
    (in the ledger's precision, so the lease's row and the ledger round alike)."""
    if cap is None:
        return max(need, slice_size())
    share = (max(headroom or ZERO, ZERO) / HEADROOM_SHARE).quantize(PRECISION, rounding=ROUND_DOWN)
    return max(need, min(slice_size(), share))


def grant(lease: Lease, need: Decimal, cap: Decimal | None) -> Decimal | None:
    """Add at least ``need`` to the lease (a slice when the cap leaves room for one); None when
    the cap leaves less than ``need``. Raises LeaseLost when the lease's row is gone."""
    if lease.closing or lease.retired:
        return None  # on its way out: the waiting admissions start over on a new lease
    ops = connection.ops
    month = ops.adapt_datefield_value(lease.month)
    with direct_cursor() as cursor:
        headroom = book.headroom_hint(lease)
        if headroom is None and cap is not None:
            headroom = read_headroom(cursor, lease.tenant_id, month, cap)
        want = slice_for(need, cap, headroom)
        taken = take(cursor, lease.tenant_id, month, want, cap, row_known=headroom is not None)
        if taken is None and want > need:
            want, taken = need, take(cursor, lease.tenant_id, month, need, cap, row_known=True)
        if taken is None:
            return None
        now = ops.adapt_datetimefield_value(timezone.now())
        if lease.written:
            cursor.execute(GROW_LEASE, [want, now, lease.token])
            if not cursor.rowcount:
                raise LeaseLost(lease.token)
        else:
            cursor.execute(INSERT_LEASE, [lease.token, lease.tenant_id, month, want, holder(), now, now])
    headroom_after = None if cap is None else cap - taken
    transaction.on_commit(lambda: book.credit(lease, want, headroom_after))
    return want


def read_headroom(cursor, tenant_id: int, month, cap: Decimal) -> Decimal:
    cursor.execute(HEADROOM, [tenant_id, month])
    row = cursor.fetchone()
    if row is None:
        cursor.execute(OPEN_MONTH, [tenant_id, month])
        return cap
    return cap - decimal(row[0]) - decimal(row[1])


def take(cursor, tenant_id: int, month, amount: Decimal, cap: Decimal | None, *,
         row_known: bool) -> Decimal | None:
    """Add ``amount`` to the month's reserved within the cap; settled + reserved after, or None."""
    params = [amount, tenant_id, month, cap, amount, cap]
    cursor.execute(TAKE, params)
    row = cursor.fetchone()
    if row is None and not row_known:  # refused, or the month's row is not there yet: make it, then again
        cursor.execute(OPEN_MONTH, [tenant_id, month])
        cursor.execute(TAKE, params)
        row = cursor.fetchone()
    return None if row is None else decimal(row[0]) + decimal(row[1])


def pay(cursor, lease: Lease, cost: Decimal) -> Decimal:
    """Settlements' ``cost`` out of the lease; what comes off the ledger's reserved with it: the
    cost, or, closing the lease, all it held; nothing if the lease was given back already."""
    if lease.closing:
        return close_one(cursor, lease)
    if not cost or not lease.written:  # nothing to pay, or nothing to pay it from (free requests only)
        return ZERO
    cursor.execute(PAY_FROM_LEASE, [cost, lease.token])
    if cursor.rowcount:
        return cost
    if book.find(lease.token) is lease:
        transaction.on_commit(lambda: book.lost(lease))
    return ZERO


def close_one(cursor, lease: Lease) -> Decimal:
    """DELETE the lease's row: the amount it held (nothing if it was closed or reclaimed before)."""
    cursor.execute(CLOSE_LEASE, [lease.token])
    row = cursor.fetchone()
    transaction.on_commit(lambda: book.closed([lease]))
    return ZERO if row is None else decimal(row[0])


def close(leases: list[Lease]) -> None:
    """Give back what the leases have left (each: its row's amount off the month's reserved)."""
    ops = connection.ops
    with direct_cursor() as cursor:
        for lease in sorted(leases, key=lambda lease: (lease.tenant_id, lease.token)):
            amount = close_one(cursor, lease)
            if amount:
                cursor.execute(GIVE_BACK, [amount, lease.tenant_id, ops.adapt_datefield_value(lease.month)])


def renew_held() -> None:
    """Mark this process's leases alive; one found gone was taken by a sweeper (LeaseLost)."""
    leases = book.renewable()
    if not leases:
        return
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        for lease in leases:
            cursor.execute("UPDATE usage_budgetlease SET renewed_at = %s WHERE token = %s", [now, lease.token])
            if not cursor.rowcount:
                transaction.on_commit(lambda lease=lease: book.lost(lease))


def reclaim_stale(cursor) -> int:
    """Give back every lease not renewed for BUDGET_LEASE_TTL_SECONDS (its process died)."""
    cutoff = timezone.now() - timedelta(seconds=settings.BUDGET_LEASE_TTL_SECONDS)
    cursor.execute(STALE_LEASES, [connection.ops.adapt_datetimefield_value(cutoff)])
    stale = cursor.fetchall()
    for tenant_id, month, amount in stale:
        cursor.execute(GIVE_BACK, [decimal(amount), tenant_id, month])
        log.warning("gave back the budget lease of a dead process: %s USD of tenant %s", amount, tenant_id)
    return len(stale)
