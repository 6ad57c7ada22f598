"""Blocking work (ORM reads on a cache miss) run off the event loop, on the shared executor.

/v1 skips Django's per-request connection handling (gateway/handlers.py), so a function run
here releases the connection it used, as request_finished would have: to PostgreSQL's pool
(settings: psycopg_pool), or, on SQLite, kept by its executor thread for CONN_MAX_AGE (a new
connection parses the schema again); closed at once if it failed or outlived that.
"""

from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

T = TypeVar("T")


def _then_release(fn: Callable[..., T], *args) -> T:
    try:
        return fn(*args)
    finally:
        close_old_connections()


async def run_blocking(fn: Callable[..., T], *args) -> T:
    return await sync_to_async(_then_release, thread_sensitive=False)(fn, *args)
