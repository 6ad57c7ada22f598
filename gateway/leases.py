"""Leases on periodic jobs: one run per period across every process that might run it.

    take_lease(name, holder, every=, hold=, now=)   True when ``holder`` may run ``name`` now
    release_lease(name, holder, now=)               done: the next period's taker need not wait

A job is due when its last run started ``every`` seconds ago or more and nobody holds it. Taking
it is one conditional UPDATE (the first time, one INSERT that a unique name lets only one process
win), which starts the period and holds the job for ``hold`` seconds: a process that dies with
it is replaced once that passes, and a run longer than its period is not started twice. The
same SQL runs on SQLite and PostgreSQL. ``now`` comes from the caller, so tests pass a clock.
"""

from datetime import datetime, timedelta

from django.db import connection

TAKE = """
UPDATE gateway_lease SET holder = %s, expires_at = %s, last_run_at = %s
WHERE name = %s AND expires_at <= %s AND last_run_at <= %s
"""
FIRST = """
INSERT INTO gateway_lease (name, holder, expires_at, last_run_at) VALUES (%s, %s, %s, %s)
ON CONFLICT (name) DO NOTHING
"""
RELEASE = "UPDATE gateway_lease SET expires_at = %s WHERE name = %s AND holder = %s"


def take_lease(name: str, holder: str, *, every: float, hold: float, now: datetime) -> bool:
    adapt = connection.ops.adapt_datetimefield_value
    until, due_if_started_by = adapt(now + timedelta(seconds=hold)), adapt(now - timedelta(seconds=every))
    with connection.cursor() as cursor:
        cursor.execute(TAKE, [holder, until, adapt(now), name, adapt(now), due_if_started_by])
        if cursor.rowcount:
            return True
        cursor.execute(FIRST, [name, holder, until, adapt(now)])
        return cursor.rowcount == 1


def release_lease(name: str, holder: str, *, now: datetime) -> None:
    with connection.cursor() as cursor:
        cursor.execute(RELEASE, [connection.ops.adapt_datetimefield_value(now), name, holder])
