"""Blocking work (ORM reads on a cache miss) run off the event loop, on the shared executor.

/v1 skips Django's per-request connection handling (gateway/handlers.py), so a function run
here closes the connection it opened, as request_finished would have: cache misses are rare,
and a connection left open in an executor thread would outlive its use.
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
