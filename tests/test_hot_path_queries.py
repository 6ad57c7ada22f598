"""After warm-up, a completion costs its admission and settlement writes, and nothing else:
the key, tenant, plan and catalog come from process memory, and the writes go through the
ledger writer's one connection (usage/writer.py)."""

import json
from contextlib import contextmanager

from asgiref.sync import async_to_sync
from django.db.backends.signals import connection_created
from django.test import AsyncClient

from usage.models import UsageRecord
from usage.writer import writer

# Two commits of the ledger writer, one job each: the reservation (conditional UPDATE, INSERT
# the open reservation), then the settlement (INSERT the record, DELETE the open reservation,
# UPDATE the ledger, upsert the rollup); BEGIN and COMMIT of each, the savepoint in settle().
QUERIES = 12
WRITES = ["UPDATE", "INSERT", "INSERT", "DELETE", "UPDATE", "INSERT"]


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


def data_statements(captured) -> list[str]:
    verbs = [query["sql"].split()[0].upper() for query in captured.captured_queries]
    return [verb for verb in verbs if verb not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")]


BODY = json.dumps({"model": "demo/echo", "messages": [{"role": "user", "content": "hello"}]})


def complete(api_key, body=BODY):
    return async_to_sync(AsyncClient().post)("/v1/chat/completions", body, content_type="application/json",
                                             headers={"Authorization": f"Bearer {api_key}"})


def test_completion_after_warm_up_makes_only_the_reservation_and_settlement_queries(
        api_key, tenant, django_assert_num_queries):
    assert complete(api_key).status_code == 200  # warm-up: loads the key and the catalog
    # 1 conditional UPDATE reserving spend; 3 in the settlement: INSERT the record, UPDATE the
    # ledger, upsert the daily rollup. Nothing on the request's own connection.
    with no_new_connections(), django_assert_num_queries(QUERIES, connection=writer.connection) as captured:
        response = complete(api_key)
    assert response.status_code == 200
    assert data_statements(captured) == WRITES
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2


def test_streamed_completion_makes_the_same_queries(api_key, django_assert_num_queries):
    complete(api_key)
    body = json.dumps({"model": "demo/echo", "stream": True, "messages": [{"role": "user", "content": "a b"}]})

    async def stream():
        response = await AsyncClient().post("/v1/chat/completions", body, content_type="application/json",
                                            headers={"Authorization": f"Bearer {api_key}"})
        return b"".join([chunk async for chunk in response.streaming_content])

    with no_new_connections(), django_assert_num_queries(QUERIES, connection=writer.connection) as captured:
        content = async_to_sync(stream)()
    assert content.endswith(b"data: [DONE]\n\n")
    assert data_statements(captured) == WRITES
