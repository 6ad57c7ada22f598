"""After warm-up, a completion costs its admission and settlement writes, and nothing else:
the key, tenant, plan and catalog come from process memory, and the writes go through the
ledger writer's one connection (usage/writer.py)."""

import json

from asgiref.sync import async_to_sync
from django.test import AsyncClient

from usage.models import UsageRecord
from usage.writer import writer

# Two commits of the ledger writer (reservation, then settlement), one job each: the four data
# statements, BEGIN and COMMIT of each transaction, and the savepoint inside settle().
QUERIES = 10


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
    with django_assert_num_queries(0), django_assert_num_queries(QUERIES, connection=writer.connection) as captured:
        response = complete(api_key)
    assert response.status_code == 200
    assert data_statements(captured) == ["UPDATE", "INSERT", "UPDATE", "INSERT"]
    assert UsageRecord.objects.filter(tenant=tenant).count() == 2


def test_streamed_completion_makes_the_same_queries(api_key, django_assert_num_queries):
    complete(api_key)
    body = json.dumps({"model": "demo/echo", "stream": True, "messages": [{"role": "user", "content": "a b"}]})

    async def stream():
        response = await AsyncClient().post("/v1/chat/completions", body, content_type="application/json",
                                            headers={"Authorization": f"Bearer {api_key}"})
        return b"".join([chunk async for chunk in response.streaming_content])

    with django_assert_num_queries(0), django_assert_num_queries(QUERIES, connection=writer.connection) as captured:
        content = async_to_sync(stream)()
    assert content.endswith(b"data: [DONE]\n\n")
    assert data_statements(captured) == ["UPDATE", "INSERT", "UPDATE", "INSERT"]
