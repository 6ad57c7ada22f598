"""Scale-out: three gateway nodes on one database and one Redis, one tenant's traffic spread over
them, two background processes beside them. The spend cap holds under concurrency across nodes,
the rate window is one for all nodes, a key revoked through one node stops on the others within
KEY_CACHE_SECONDS, the ledger is the sum of the records with no reservation left open, and each
periodic job ran once."""

import itertools
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
from django.contrib.auth import get_user_model

from billing.models import Plan
from gateway.api_keys import issue_api_key
from gateway.background import PERIODIC_JOBS
from gateway.models import ApiKey, Lease
from tests.conftest import wait_for
from tests.fakes.openai_upstream import Reply
from usage.models import MonthlySpend, OpenReservation, UsageRecord

KEY_CACHE_SECONDS = 1.0
RATE = 10
CAP = Decimal("0.05")  # five answers of OUTPUT tokens (gpt-4o-mini: $0.60 per million)
OUTPUT = 16_000
BODY = {"model": "openai/gpt-4o-mini", "max_tokens": OUTPUT, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def fleet(processes, redis_url, tenant):
    subprocess.run(["redis-cli", "-u", redis_url, "FLUSHALL"], check=True, capture_output=True)
    Plan.objects.filter(slug="pro").update(requests_per_minute=RATE, monthly_spend_limit=None)
    env = {"REDIS_URL": redis_url, "KEY_CACHE_SECONDS": str(KEY_CACHE_SECONDS)}
    # Spend alerts run every 30 s by default: an hour here, so each job runs once in the test.
    background = [processes.start(["manage.py", "run_background"], BACKGROUND_TICK_SECONDS="0.1",
                                  ALERT_CHECK_SECONDS="3600", **env)
                  for _ in range(2)]
    return processes.nodes(3, **env), background


ANSWERED: list[httpx.Response] = []  # every answer of the test, whichever node gave it


def call(url: str, key: str) -> httpx.Response:
    answer = httpx.post(f"{url}/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"},
                        timeout=30)
    ANSWERED.append(answer)
    return answer


def spread(nodes: list[str], key: str, count: int) -> list[httpx.Response]:
    """``count`` requests at once, round robin over the nodes."""
    with ThreadPoolExecutor(max_workers=12) as pool:
        return list(pool.map(call, itertools.islice(itertools.cycle(nodes), count), itertools.repeat(key, count)))


def wait_for_a_fresh_rate_window(nodes: list[str], key: str) -> int:
    """Start the burst early in a window, so one window holds it (setup, not an assertion). One
    request tells where the window stands: how many of the burst's window it used (0 or 1)."""
    probe = call(nodes[0], key)
    assert probe.status_code == 200
    left = int(probe.headers["x-ratelimit-reset-requests"].rstrip("s"))
    if left < 20:
        time.sleep(left + 1)
        return 0
    return 1


def new_key(tenant, **options) -> str:
    alice = get_user_model().objects.get(email="alice@example.com")
    return issue_api_key(tenant, name=f"key {time.monotonic()}", created_by=alice, **options).raw


def test_three_nodes_share_limits_keys_ledger_and_jobs(fleet, processes, tenant, other_tenant, fake_openai):
    nodes, background = fleet
    ANSWERED.clear()
    # One rate window for all nodes: RATE requests in it, whichever node takes them.
    key = new_key(tenant)
    used = wait_for_a_fresh_rate_window(nodes, key)
    answers = spread(nodes, key, 3 * RATE)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * (RATE - used) + [429] * (2 * RATE + used)
    assert all(a.json()["error"]["code"] == "rate_limit_exceeded" for a in answers if a.status_code == 429)

    # The spend cap holds across nodes: answers cost what the reservation allowed for.
    Plan.objects.filter(slug="pro").update(requests_per_minute=10_000, monthly_spend_limit=CAP)
    fake_openai.enqueue(*[Reply(usage={"prompt_tokens": 10, "completion_tokens": OUTPUT, "total_tokens": OUTPUT + 10})
                          for _ in range(30)])
    spender = new_key(tenant)  # a key no node has cached: it reads the plan as it is now
    answers = spread(nodes, spender, 30)
    served = [answer for answer in answers if answer.status_code == 200]
    refused = [answer for answer in answers if answer.status_code == 429]
    assert served and refused and len(served) + len(refused) == 30
    assert {answer.json()["error"]["code"] for answer in refused} == {"insufficient_quota"}
    assert MonthlySpend.objects.get(tenant=tenant).settled <= CAP

    # A key revoked through one node stops on the others within KEY_CACHE_SECONDS.
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=None)  # read by the keys made from here on
    manager = new_key(tenant, scopes=["management"])
    victim = new_key(tenant)
    assert all(call(url, victim).status_code == 200 for url in nodes)  # every node has it cached
    key_id = ApiKey.objects.get(prefix=victim.split("-")[1]).pk
    revoked = httpx.post(f"{nodes[0]}/api/tenants/{tenant.slug}/keys/{key_id}/revoke/",
                         headers={"Authorization": f"Bearer {manager}"})
    assert revoked.status_code == 200, revoked.text
    revoked_at = time.monotonic()
    assert call(nodes[0], victim).status_code == 401  # at once on the node that revoked it
    for url in nodes[1:]:
        wait_for(lambda url=url: call(url, victim).status_code == 401, timeout=KEY_CACHE_SECONDS + 5,
                 what="the revoked key to stop on another node")
    assert time.monotonic() - revoked_at <= KEY_CACHE_SECONDS + 5

    # The ledger is the sum of the records; nothing is left reserved.
    wait_for(lambda: not OpenReservation.objects.exists(), what="every request to settle")
    records = UsageRecord.objects.filter(tenant=tenant)
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert ledger.reserved == Decimal(0)
    assert ledger.settled == sum((record.cost for record in records), Decimal(0))
    served_ids = {answer.headers["x-tollgate-request-id"] for answer in ANSWERED if answer.status_code == 200}
    assert set(records.filter(http_status=200).values_list("request_id", flat=True)) == served_ids
    assert records.count() == len(served_ids)  # one record per answer, refusals none
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()

    # Each periodic job ran once, in one of the two background processes.
    wait_for(lambda: Lease.objects.count() == len(PERIODIC_JOBS), what="every periodic job to have run")
    for process in background:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, processes.output(process)[-3000:]
    output = "".join(processes.output(process) for process in background)
    for job in PERIODIC_JOBS:
        assert len(re.findall(rf"periodic job {job.name} ran", output)) == 1, output[-3000:]
