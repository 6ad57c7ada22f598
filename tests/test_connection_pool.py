"""On PostgreSQL each process pools its connections: a /v1 cache-miss read, which closes its
connection when done (providers/blocking.py), hands it back to the pool for the next read."""

import asyncio

import pytest
from django.db import connection

from gateway.models import Tenant
from providers.blocking import run_blocking

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the pool is PostgreSQL's (make test-postgres)")


def backend_pid() -> int:
    Tenant.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_the_pool_is_sized_by_settings():
    assert connection.settings_dict["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 20, "timeout": 10.0}


def test_a_cache_miss_read_gives_its_connection_back_to_the_pool(transactional_db):
    first = asyncio.run(run_blocking(backend_pid))
    opened = connection.pool.get_stats()["connections_num"]
    available = connection.pool.get_stats()["pool_available"]
    pids = [asyncio.run(run_blocking(backend_pid)) for _ in range(10)]  # a new executor thread each time
    stats = connection.pool.get_stats()
    assert stats["connections_num"] == opened  # no new connection to the server
    assert stats["pool_available"] == available  # every read gave its connection back
    assert len(set(pids) | {first}) <= opened  # only the pool's own connections, again and again
