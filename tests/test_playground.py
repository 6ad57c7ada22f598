"""The playground: a member streams an answer over a WebSocket, through the same plan checks,
admission, routing and usage records as /v1, and sees what it cost."""

import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from billing.models import Plan
from gateway.models import Membership, Role
from tests.conftest import make_tenant, wait_for
from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord
from usage.summaries import daily_usage

ALICE, CHARLIE = "alice@example.com", "charlie@example.com"


def session_cookie(email: str) -> str:
    browser = Client()
    browser.force_login(get_user_model().objects.get(email=email))
    return f"sessionid={browser.cookies['sessionid'].value}"


def open_playground(gateway_url: str, tenant_slug: str, email: str | None):
    url = gateway_url.replace("http://", "ws://") + f"/ws/tenants/{tenant_slug}/playground/"
    return connect(url, additional_headers={"Cookie": session_cookie(email) if email else "",
                                            "Origin": gateway_url})


def run(socket, prompt: str, model: str = "demo/echo", **extra) -> None:
    socket.send(json.dumps({"action": "run", "model": model, "prompt": prompt, **extra}))


def receive(socket) -> dict:
    return json.loads(socket.recv(timeout=10))


def receive_until(socket, kind: str) -> list[dict]:
    """Every message up to and including the first of type ``kind``."""
    messages = [receive(socket)]
    while messages[-1]["type"] != kind:
        messages.append(receive(socket))
    return messages


def test_member_streams_an_answer_and_sees_its_recorded_cost(gateway_url, tenant, other_tenant):
    with open_playground(gateway_url, tenant.slug, ALICE) as socket:
        run(socket, "hello brave new world")
        messages = receive_until(socket, "done")

    started, done = messages[0], messages[-1]
    assert started["type"] == "started" and started["model"] == "demo/echo"
    tokens = [m["text"] for m in messages if m["type"] == "token"]
    assert tokens == ["hello", " brave", " new", " world"]
    record = UsageRecord.objects.get(request_id=started["request_id"])
    assert record.tenant == tenant and record.api_key is None  # made as the member, not with a key
    assert (record.model, record.streamed, record.outcome, record.ending) == ("demo/echo", True, "ok", "completed")
    assert (done["input_tokens"], done["output_tokens"]) == (record.input_tokens, record.output_tokens) == (4, 4)
    assert Decimal(done["cost"]) == record.cost > 0 and done["stopped"] is False
    assert done["cost_display"] == f"${record.cost.normalize():f}"
    today = record.created_at.date()
    assert [row["split"] for row in daily_usage(tenant.id, split="key", days=1, today=today)] == ["playground"]
    assert not UsageRecord.objects.filter(tenant=other_tenant).exists()


@pytest.mark.parametrize("email", [CHARLIE, None])
def test_outsiders_and_anonymous_are_refused_at_the_handshake(gateway_url, tenant, other_tenant, email):
    with pytest.raises(InvalidStatus) as refused:
        open_playground(gateway_url, tenant.slug, email)
    assert refused.value.response.status_code == 403


def test_billing_members_may_not_use_the_playground(gateway_url, tenant, other_tenant):
    accountant = get_user_model().objects.create_user(username="bea", email="bea@example.com")
    Membership.objects.create(tenant=tenant, user=accountant, role=Role.BILLING)
    with pytest.raises(InvalidStatus) as refused:
        open_playground(gateway_url, tenant.slug, "bea@example.com")
    assert refused.value.response.status_code == 403
    page = Client()
    page.force_login(accountant)
    assert page.get(f"/t/{tenant.slug}/playground/").status_code == 403


def test_model_off_the_plan_is_refused_in_words(gateway_url, catalog, other_tenant):
    free = make_tenant("frugal", "fran@example.com", "free")
    with open_playground(gateway_url, free.slug, "fran@example.com") as socket:
        run(socket, "hi", model="openai/gpt-4o-mini")
        error = receive(socket)
        run(socket, "hi", model="no/such-model")
        missing = receive(socket)
    assert error["type"] == "error" and error["status"] == 403 and error["code"] == "model_not_on_plan"
    assert "model 'openai/gpt-4o-mini' is not on plan Free" in error["message"]
    assert missing["status"] == 404 and "does not exist" in missing["message"]
    assert not UsageRecord.objects.filter(tenant=free).exists()


def test_page_offers_only_the_models_of_the_plan(catalog, other_tenant):
    make_tenant("frugal", "fran@example.com", "free")
    page = Client()
    page.force_login(get_user_model().objects.get(email="fran@example.com"))
    html = page.get("/t/frugal/playground/").content.decode()
    assert '<option value="demo/echo">' in html and "openai/" not in html
    assert page.get(f"/t/{other_tenant.slug}/playground/").status_code == 404


def test_spend_cap_is_enforced_and_explained(gateway_url, tenant, other_tenant):
    Plan.objects.filter(slug="pro").update(monthly_spend_limit=Decimal("0.01"))
    with open_playground(gateway_url, tenant.slug, ALICE) as socket:
        run(socket, "hi", model="openai/gpt-4o")  # up to 16,384 tokens at $10/M: more than the cap
        error = receive(socket)
    assert error["type"] == "error" and error["code"] == "insufficient_quota"
    assert "plan Pro allows $0.01 of spend per month" in error["message"]
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


def test_rate_window_is_the_tenants_own(gateway_url, tenant, other_tenant):
    Plan.objects.filter(slug="pro").update(requests_per_minute=1)
    with open_playground(gateway_url, tenant.slug, ALICE) as socket:
        run(socket, "one")
        assert receive_until(socket, "done")[-1]["type"] == "done"
        run(socket, "two")
        limited = receive(socket)
    assert limited["code"] == "rate_limit_exceeded" and "allows 1 requests per minute" in limited["message"]
    # Charlie's playground keeps its own window.
    with open_playground(gateway_url, other_tenant.slug, CHARLIE) as socket:
        run(socket, "three")
        assert receive_until(socket, "done")[-1]["output_tokens"] == 1


def test_bad_input_is_explained(gateway_url, tenant, other_tenant):
    with open_playground(gateway_url, tenant.slug, ALICE) as socket:
        run(socket, "   ")
        empty = receive(socket)
        run(socket, "hi", max_tokens="lots")
        bad_max = receive(socket)
    assert empty["message"] == "Type a prompt first."
    assert "Max tokens must be a whole number" in bad_max["message"]


def test_stop_ends_the_answer_and_bills_what_was_produced(gateway_url, tenant, other_tenant, fake_openai):
    fake_openai.enqueue(Reply(text="one two three four five six seven eight nine ten", chunk_delay=0.2))
    with open_playground(gateway_url, tenant.slug, ALICE) as socket:
        run(socket, "count", model="openai/gpt-4o-mini")
        first = receive_until(socket, "token")
        socket.send(json.dumps({"action": "stop"}))
        rest = receive_until(socket, "done")
    done = rest[-1]
    produced = [m for m in first + rest if m["type"] == "token"]
    assert done["stopped"] is True and 1 <= len(produced) < 10
    record = UsageRecord.objects.get(request_id=first[0]["request_id"])
    assert record.ending == "client_gone" and record.output_tokens >= 1
    assert Decimal(done["cost"]) == record.cost > 0


def test_leaving_mid_answer_settles_the_request(gateway_url, tenant, other_tenant, fake_openai):
    fake_openai.enqueue(Reply(text="one two three four five six seven eight nine ten", chunk_delay=0.2))
    with open_playground(gateway_url, tenant.slug, ALICE) as socket:
        run(socket, "count", model="openai/gpt-4o-mini")
        request_id = receive_until(socket, "token")[0]["request_id"]
    record = wait_for(lambda: UsageRecord.objects.filter(request_id=request_id).first(), what="the settlement")
    assert record.ending == "client_gone" and record.api_key is None
