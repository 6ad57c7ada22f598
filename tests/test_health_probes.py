"""/healthz says the process answers; /readyz says it can serve, and names what fails when not."""

import httpx

from tests.conftest import free_port


def test_healthz_answers_ok(gateway_url):
    response = httpx.get(f"{gateway_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_with_the_database_migrated_and_the_writer_running(gateway_url, transactional_db):
    response = httpx.get(f"{gateway_url}/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "failed": [], "checks": {
        "database": "ok", "migrations": "ok", "ledger_writer": "ok"}}  # no Redis configured, none checked


def test_readyz_names_redis_when_it_does_not_answer(gateway_url, transactional_db, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = httpx.get(f"{gateway_url}/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["redis"]
    assert body["checks"]["redis"].startswith("unreachable")
    assert body["checks"]["database"] == "ok"


def test_readyz_names_a_ledger_writer_that_falls_behind(gateway_url, transactional_db, settings):
    settings.READY_MAX_WRITER_QUEUE = -1
    response = httpx.get(f"{gateway_url}/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["ledger_writer"]


def test_without_its_database_a_process_is_alive_but_not_ready(processes, transactional_db):
    closed = free_port()
    url = processes.node(DATABASE_URL=f"postgres://tollgate:secret-pw@127.0.0.1:{closed}/tollgate",
                         READY_TIMEOUT_SECONDS="1", DB_POOL_TIMEOUT="1")  # node() waits for /healthz: 200
    response = httpx.get(f"{url}/readyz", timeout=10)
    assert response.status_code == 503
    body = response.json()
    assert "database" in body["failed"]
    assert body["checks"]["database"].startswith("unreachable")
    assert "secret-pw" not in response.text and str(closed) not in response.text
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
