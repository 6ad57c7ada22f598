"""After warm-up, a completion costs its admission and settlement writes, and nothing else:
the key, tenant, plan and catalog come from process memory, the spend reservation from the
process's budget lease (usage/leases.py), and the writes go through the ledger writer's one
connection (usage/writer.py), settlements that finish together in one commit."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.db.backends.signals import connection_created
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext

from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from usage.models import BudgetLease, DailyUsage, MonthlySpend, OpenReservation, UsageRecord
from usage.writer import writer

# With nothing else in flight, a request takes a lease of its tenant's month (the ledger's
# conditional UPDATE, INSERT the lease) and, settling as its last request, gives it back in the
# commit of its record (INSERT the record, DELETE the lease, UPDATE the ledger, upsert the
# rollup). Its open row is written only when its settlement is not in the same batch.
GRANT = [("UPDATE", "usage_monthlyspend"), ("INSERT", "usage_budgetlease")]
RECORD = ("INSERT", "usage_usagerecord")
LEDGER = [("UPDATE", "usage_monthlyspend"), ("INSERT", "usage_dailyusage")]
OPEN_ROW, CLOSE_ROW = ("INSERT", "usage_openreservation"), ("DELETE", "usage_openreservation")
GIVE_BACK, PAY = ("DELETE", "usage_budgetlease"), ("UPDATE", "usage_budgetlease")
WRITES = (GRANT + [RECORD, GIVE_BACK, *LEDGER],  # the open row and the settlement in one batch
          GRANT + [OPEN_ROW, RECORD, CLOSE_ROW, GIVE_BACK, *LEDGER])


@pytest.fixture(autouse=True)
def no_housekeeping(monkeypatch):
    """The writer's periodic round (every RESERVATION_SWEEP_SECONDS of its life) renews and
    reclaims leases: should it fall due inside a test's capture, its statements would be counted
    with the request's. It is not what these tests count."""
    monkeypatch.setattr(writer, "housekeeping", None)


@contextmanager
def no_new_connections():
    """Reads on a cache miss run on executor threads and close their connection afterwards,
    so a read during the request would open a connection: there must be none."""
    opened = []

    def count(sender, connection, **kwargs):
        opened.append(connection.alias)

    connection_created.connect(count, weak=False)
    try:
        yield
    finally:
        connection_created.disconnect(count)
    assert opened == [], f"the request opened {len(opened)} connection(s): a cache that should hold did not"


def data_statements(captured) -> list[tuple[str, str]]:
    """(verb, table) of each statement but BEGIN, COMMIT and savepoints."""
    statements = []
    for query in captured.captured_queries:
        words = query["sql"].replace("(", " ").replace('"', "").split()
        if words[0].upper() not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"):
            statements.append((words[0].upper(), next(word for word in words if word.startswith("usage_"))))
    return statements


BODY = json.dumps({"model": "demo/echo", "messages": [{"role": "user", "content": "hello"}]})


def complete(api_key, body=BODY):
    return async_to_sync(AsyncClient().post)("/v1/chat/completions", body, content_type="application/json",
                                             headers={"Authorization": f"Bearer {api_key}"})


def test_completion_after_warm_up_makes_only_its_lease_and_settlement_writes(api_key, tenant, other_tenant):
    assert complete(api_key).status_code == 200  # warm-up: loads the key and the catalog
    with no_new_connections(), CaptureQueriesContext(writer.connection) as captured:
        response = complete(api_key)
    assert response.status_code == 200
    assert data_statements(captured) in WRITES
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2
    assert MonthlySpend.objects.get(tenant=tenant).reserved == 0 and not BudgetLease.objects.exists()
    assert not MonthlySpend.objects.filter(tenant=other_tenant).exists()


def test_streamed_completion_makes_the_same_writes(api_key):
    complete(api_key)
    body = json.dumps({"model": "demo/echo", "stream": True, "messages": [{"role": "user", "content": "a b"}]})

    async def stream():
        response = await AsyncClient().post("/v1/chat/completions", body, content_type="application/json",
                                            headers={"Authorization": f"Bearer {api_key}"})
        return b"".join([chunk async for chunk in response.streaming_content])

    with no_new_connections(), CaptureQueriesContext(writer.connection) as captured:
        content = async_to_sync(stream)()
    assert content.endswith(b"data: [DONE]\n\n")
    assert data_statements(captured) in WRITES


def test_with_its_lease_kept_a_request_writes_nothing_before_its_settlement(api_key, tenant, settings):
    """Kept idle between requests (BUDGET_LEASE_IDLE_SECONDS), the lease covers the next request
    with no database round trip: its only ledger write is its settlement's, paid out of the lease.
    Stopping the writer (shutdown) gives the lease back."""
    settings.BUDGET_LEASE_IDLE_SECONDS = 60
    assert complete(api_key).status_code == 200
    lease = BudgetLease.objects.get(tenant=tenant)
    with no_new_connections(), CaptureQueriesContext(writer.connection) as captured:
        assert complete(api_key).status_code == 200
    assert data_statements(captured) in ([RECORD, PAY, *LEDGER], [OPEN_ROW, RECORD, CLOSE_ROW, PAY, *LEDGER])
    first, second = UsageRecord.objects.filter(tenant=tenant).order_by("created_at")
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.settled == first.cost + second.cost > 0
    assert ledger.reserved == BudgetLease.objects.get(pk=lease.pk).amount == lease.amount - second.cost

    writer.stop()
    try:
        ledger.refresh_from_db()
        assert ledger.reserved == 0 and not BudgetLease.objects.exists()
    finally:
        writer.start()  # the next test on this worker counts the new writer's queries


def test_an_idle_lease_is_given_back_after_the_idle_timeout(api_key, tenant, settings):
    settings.BUDGET_LEASE_IDLE_SECONDS = 0.3
    assert complete(api_key).status_code == 200
    wait_for(lambda: not BudgetLease.objects.exists(), what="the idle lease to be given back")
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.reserved == 0 and ledger.settled == UsageRecord.objects.get(tenant=tenant).cost


@contextmanager
def writer_held():
    """The ledger writer busy with a job that waits on a gate: what is queued meanwhile is
    committed as one batch once the gate opens (the function yielded; at the latest on leaving)."""
    entered, gate = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        gate.wait(30)

    async def submit() -> None:
        writer.submit(hold)

    async_to_sync(submit)()
    assert entered.wait(5)
    try:
        yield gate.set
    finally:
        gate.set()


def tables_written(captured) -> dict[str, int]:
    """How many statements wrote to each table."""
    counts: dict[str, int] = {}
    for query in captured.captured_queries:
        words = query["sql"].replace("(", " ").replace('"', "").split()
        if words[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            table = next(word for word in words if word.startswith("usage_"))
            counts[table] = counts.get(table, 0) + 1
    return counts


CONCURRENT = 24


def test_requests_finishing_together_share_one_ledger_update(gateway_url, api_key, tenant, other_tenant,
                                                             fake_openai):
    """24 requests at once write the tenant's ledger row a couple of times, not twice each: one
    lease covers their reservations, and their settlements, finishing together, are one commit of
    a few statements, one UPDATE of the ledger row among them. Each client hears back only once
    the commit holding its record is done."""
    fake_openai.enqueue(*[Reply(hold=True) for _ in range(CONCURRENT)])
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}

    def call(_) -> int:
        return httpx.post(f"{gateway_url}/v1/chat/completions", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {api_key}"}).status_code

    writer.start()  # its connection is the one to watch
    with CaptureQueriesContext(writer.connection) as everything, ThreadPoolExecutor(CONCURRENT) as pool:
        answers = [pool.submit(call, n) for n in range(CONCURRENT)]
        wait_for(lambda: len(fake_openai.requests) == CONCURRENT, what="every request at the upstream")
        wait_for(lambda: OpenReservation.objects.filter(tenant=tenant).count() == CONCURRENT,
                 what="every open row written")
        with writer_held() as let_through:
            fake_openai.release()
            wait_for(lambda: writer.queue_depth() >= CONCURRENT, what="every settlement queued")
            assert not any(answer.done() for answer in answers)  # each waits for its record's commit
            with CaptureQueriesContext(writer.connection) as settling:
                let_through()
                statuses = [answer.result() for answer in answers]
    assert statuses == [200] * CONCURRENT
    in_all = tables_written(everything)
    assert in_all["usage_monthlyspend"] <= 3  # the lease, (a top-up,) the settlements: not 48
    in_settlement = tables_written(settling)
    assert in_settlement["usage_monthlyspend"] == 1  # one ledger UPDATE for all 24 settlements
    assert in_settlement["usage_usagerecord"] == 1 and in_settlement["usage_dailyusage"] == 1
    assert sum(in_settlement.values()) <= 5, in_settlement
    records = UsageRecord.objects.filter(tenant=tenant)
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert records.count() == CONCURRENT and ledger.reserved == 0 and not BudgetLease.objects.exists()
    assert ledger.settled == sum(record.cost for record in records)
    assert DailyUsage.objects.get(tenant=tenant).requests == CONCURRENT
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()
