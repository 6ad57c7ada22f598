"""What a load balancer, an orchestrator and Prometheus ask a gateway process.

    GET /healthz   the process answers: 200 {"status": "ok"}; touches nothing else (no database)
    GET /readyz    it can serve: the database answers and its migrations are applied, Redis
                   answers (when REDIS_URL is set), the ledger writer runs and keeps up. 200, or
                   503 naming what failed; each check within READY_TIMEOUT_SECONDS
    GET /metrics   Prometheus text (gateway/exposition.py)

Served by the light /v1 handler (gateway/handlers.py): no session, no middleware. Answers name
checks and error classes, never a setting's value (a DATABASE_URL carries a password).
"""

import asyncio

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

from providers.blocking import run_blocking
from usage.writer import writer

OK = "ok"
_migrated = [False]  # once every migration is seen applied, this process stops looking
_database_check: list[asyncio.Future | None] = [None]


async def healthz(request):
    return JsonResponse({"status": "ok"})


def database_state() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    if not _migrated[0]:
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            return {"database": OK, "migrations": "not applied: run `make migrate` (manage.py migrate)"}
        _migrated[0] = True
    return {"database": OK, "migrations": OK}


async def check_database() -> dict[str, str]:
    """One check at a time per process: a database that hangs must not tie up a thread per probe
    (the executor's threads serve /v1's cache misses too)."""
    pending = _database_check[0]
    if pending is None or pending.done():
        pending = _database_check[0] = asyncio.ensure_future(run_blocking(database_state))
        pending.add_done_callback(lambda done: done.cancelled() or done.exception())  # read, if late
    try:
        return await asyncio.wait_for(asyncio.shield(pending), settings.READY_TIMEOUT_SECONDS)
    except TimeoutError:
        return {"database": "unreachable (no answer in time)", "migrations": "unknown"}
    except Exception as error:
        return {"database": f"unreachable ({type(error).__name__})", "migrations": "unknown"}


async def check_redis() -> dict[str, str]:
    if not settings.REDIS_URL:
        return {}
    import redis.asyncio

    timeout = settings.READY_TIMEOUT_SECONDS
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            await client.ping()
    except (TimeoutError, OSError, redis.RedisError) as error:
        return {"redis": f"unreachable ({type(error).__name__})"}
    finally:
        await client.aclose()
    return {"redis": OK}


def check_ledger_writer() -> dict[str, str]:
    writer.start()  # a writer that died is started again; if it cannot start, it is not running
    if not writer.is_running():
        return {"ledger_writer": "not running"}
    waiting = writer.queue_depth()
    if waiting > settings.READY_MAX_WRITER_QUEUE:
        return {"ledger_writer": f"behind ({waiting} jobs waiting)"}
    return {"ledger_writer": OK}


async def readyz(request):
    database, redis_state = await asyncio.gather(check_database(), check_redis())
    checks = {**database, **redis_state, **check_ledger_writer()}
    failed = sorted(name for name, state in checks.items() if state != OK)
    return JsonResponse({"status": "unavailable" if failed else "ok", "failed": failed, "checks": checks},
                        status=503 if failed else 200)
