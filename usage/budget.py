"""Spend reservations from this process's budget lease: no database round trip while it has room.

    await reserve(reservation, cap)   hold reservation.amount for the request against the lease of
                                      its tenant's month (usage/leases.py); False when the cap
                                      leaves less than that. Sets reservation.month and .lease.
    release(reservation)              give a hold back unsettled (the request never ran)

Far from the cap a request is held in memory and its open row (what the sweeper records should
this process die) is written in the background with the next batch; when the lease runs low a
top-up is asked for ahead of need. A request the lease cannot cover waits for a grant (one at a
time per lease: others wait for it too), and is refused only when its own grant, of exactly what
it still lacks, is refused. Settlement (writer.settle) pays the cost out of the lease; the last
request to settle gives back the rest.
"""

import asyncio
import logging
from decimal import Decimal

from django.utils import timezone

from usage import leases, recording
from usage.leases import Lease, LeaseLost, book
from usage.recording import Reservation, month_of
from usage.writer import writer

log = logging.getLogger(__name__)


async def reserve(reservation: Reservation, cap: Decimal | None) -> bool:
    """Hold the request's amount against its tenant's lease (module docstring)."""
    now = timezone.now()
    month = month_of(now.date())
    lease = join(reservation.tenant_id, month, cap)
    try:
        while not book.hold(lease, reservation.request_id, reservation.amount):
            if lease.retired or lease.closing:  # retired meanwhile: start over on the tenant's current lease
                close_if(book.leave(lease), lease)
                lease = join(reservation.tenant_id, month, cap)
                continue
            if not await top_up(lease, reservation.amount, cap) and not lease.retired:
                close_if(book.leave(lease), lease)
                return False
    except BaseException:  # cancelled (the client left), or the database failed
        close_if(book.leave(lease), lease)
        raise
    reservation.month, reservation.lease, reservation.admitted_at = month, lease, now
    writer.open_row(reservation)
    if lease.is_low():
        start_grant(lease, reservation.amount, cap)
    return True


def join(tenant_id: int, month, cap: Decimal | None) -> Lease:
    """The tenant's lease for the month; an idle one the cap's change retired is given back first
    (queued ahead of any grant to the new one)."""
    lease, retired = book.join(tenant_id, month, cap)
    if retired is not None:
        writer.post(leases.close, [retired])
    return lease


async def top_up(lease: Lease, amount: Decimal, cap: Decimal | None) -> bool:
    """Wait for a grant to the lease: the one on its way, or one of what this request lacks.
    False when this request's own grant was refused."""
    pending = lease.granting
    mine = pending is None or pending.done() or pending.get_loop() is not asyncio.get_running_loop()
    if mine:
        pending = start_grant(lease, amount - lease.available(), cap)
    try:
        granted = await asyncio.shield(pending)
    except LeaseLost:
        return True  # the lease is retired: the caller starts over on a new one
    return granted is not None or not mine


def start_grant(lease: Lease, need: Decimal, cap: Decimal | None) -> asyncio.Future:
    pending = writer.submit(leases.grant, lease, max(need, Decimal(0)), cap)
    lease.granting = pending
    pending.add_done_callback(lambda done: grant_done(lease, done))
    return pending


def grant_done(lease: Lease, done: asyncio.Future) -> None:
    if lease.granting is done:
        lease.granting = None
    error = None if done.cancelled() else done.exception()
    if isinstance(error, LeaseLost):
        book.lost(lease)
    elif error is not None:
        log.warning("a budget lease top-up failed: %s", error)


def release(reservation: Reservation) -> None:
    """Give back a hold whose request never ran; its open row is closed on the writer."""
    lease = reservation.lease
    closing = book.finish(lease, reservation.request_id, released=True)
    writer.post(release_open_row, reservation, lease if closing else None)


def release_open_row(reservation: Reservation, closing: Lease | None) -> None:
    recording.release(reservation)  # the open row only: the money is the lease's
    if closing is not None:
        leases.close([closing])


def close_if(closing: bool, lease: Lease) -> None:
    """Give back the rest of a lease nobody uses any more (in the background)."""
    if closing:
        writer.post(leases.close, [lease])
