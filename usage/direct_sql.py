"""The hot path's statements on the DB-API cursor itself, not through Django's cursor wrappers.

    with direct_cursor() as cursor:   execute, fetchone, fetchall, rowcount, as a Django cursor

The settlement batch and the lease grant (usage/batches.py, usage/leases.py) are plain SQL with
``%s`` placeholders, run on every request. Through Django's cursor each statement passes three
wrappers, and on SQLite a regex rewrites its ``%s`` to ``?`` every time, over a many-row INSERT
too: more CPU than SQLite's own work (bench/RESULTS.md). Here a statement's text is rewritten once
(cached) and goes to the driver directly; its errors are still Django's (IntegrityError and the
rest, through ``wrap_database_errors``). Parameters are passed as given: the callers adapt dates
and times as Django would (connection.ops), and Decimals are the drivers' own (Django registers
SQLite's adapter when it loads its backend).

While queries are being logged (DEBUG, or a test capturing them with CaptureQueriesContext), this
is Django's cursor, so they are seen.
"""

import sqlite3
from contextlib import contextmanager
from functools import lru_cache

from django.db import connection
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX


@lru_cache(maxsize=2048)
def qmark(sql: str) -> str:
    """A statement's text with SQLite's placeholders, as Django's SQLite cursor writes it."""
    return FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")


class DirectCursor:
    __slots__ = ("raw", "sqlite")

    def __init__(self, raw, sqlite: bool):
        self.raw = raw
        self.sqlite = sqlite

    def execute(self, sql: str, params=()) -> None:
        with connection.wrap_database_errors:
            if self.sqlite:
                sqlite3.Cursor.execute(self.raw, qmark(sql), params)
            else:
                self.raw.execute(sql, params)

    def fetchone(self):
        return self.raw.fetchone()

    def fetchall(self) -> list:
        return self.raw.fetchall()

    @property
    def rowcount(self) -> int:
        return self.raw.rowcount


@contextmanager
def direct_cursor():
    with connection.cursor() as cursor:
        if connection.queries_logged:
            yield cursor
        else:
            yield DirectCursor(cursor.cursor, connection.vendor == "sqlite")
