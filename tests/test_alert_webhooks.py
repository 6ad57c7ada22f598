"""Spend alerts by webhook: a tenant sets a URL on its alerts page and gets its signing secret
once; each alert is POSTed as JSON signed with HMAC-SHA256 over "<timestamp>.<body>", retried with
exponential backoff until a 2xx, logged on the page with a redelivery button. The URL goes
through the outbound-fetch policy when saved and on every delivery and redirect. A receiver on
127.0.0.1 stands for the tenant's server (allowed as OUTBOUND_ALLOWED_HOSTS), a second one for
the operator's network, which must never be reached. The clock is injected."""

import asyncio
import json
import re
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connections
from django.utils import timezone

from billing import alerts
from billing.alert_delivery import deliver_due
from billing.alert_models import AlertDelivery, AlertSettings
from gateway.models import Role
from tests.conftest import add_member, signed_in
from tests.fakes.webhook_receiver import WebhookReceiver, verify
from tests.test_spend_alerts import NOW, run_job, spend


@pytest.fixture(scope="module")
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def internal():
    """Stands for a service inside the operator's network (the metadata service, an admin port)."""
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def policy(settings, receiver, internal):
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{receiver.port}"]  # the tenant's server only
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    settings.ALERT_RETRY_BASE_SECONDS = 60.0
    receiver.reset()
    internal.reset()
    alerts.seen.clear()
    yield
    assert internal.received == []  # whatever a test did, the operator's network was never reached


def set_webhook(url: str, *, email: str = "alice@example.com", slug: str = "alice-co") -> str:
    """Save ``url`` on the alerts page; the signing secret it shows this once."""
    page = signed_in(email).post(f"/t/{slug}/billing/alerts/", {"thresholds": "50, 80, 100", "webhook_url": url})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store", page.content.decode()[:2000]
    return re.search(r'data-testid="webhook-secret">([^<]+)<', page.content.decode()).group(1)


def deliver(now) -> list[AlertDelivery]:
    return asyncio.run(deliver_due(now=now))


def webhook_delivery(tenant) -> AlertDelivery:
    return AlertDelivery.objects.filter(tenant=tenant, channel="webhook").latest("pk")


def test_an_alert_is_posted_signed_and_only_its_tenant_sees_it(tenant, other_tenant, receiver):
    add_member(tenant, "bob@example.com", Role.MEMBER)
    secret = set_webhook(f"{receiver.address}/hook")
    assert secret.startswith("tgwhsec_")
    page = signed_in("alice@example.com").get("/t/alice-co/billing/alerts/").content.decode()
    assert secret not in page and f"…{secret[-4:]}" in page  # shown once; a hint afterwards

    spend(tenant, "210")
    run_job(NOW)
    [post] = receiver.received
    headers, body = post["headers"], post["body"]
    assert verify(secret, headers, body, now=NOW.timestamp())
    assert not verify(secret + "x", headers, body, now=NOW.timestamp())
    assert not verify(secret, headers, body + b" ", now=NOW.timestamp())
    assert not verify(secret, headers, body, now=(NOW + timedelta(hours=1)).timestamp())  # a replay, later
    event = json.loads(body)
    assert headers["Tollgate-Event-Id"] == event["id"] and headers["Content-Type"] == "application/json"
    assert (event["type"], event["tenant"], event["created"]) == ("budget.threshold_reached", "alice-co",
                                                                  "2026-11-20T09:30:00Z")
    assert event["data"] == {
        "budget": {"scope": "tenant", "subject": "", "amount": "250.00", "period": "month",
                   "label": "the monthly spend cap"},
        "threshold": 80, "thresholds_passed": [50, 80], "spent": "210.0000",
        "period_start": "2026-11-01T00:00:00Z", "period_end": "2026-12-01T00:00:00Z"}
    assert [m.subject for m in mail.outbox] == ["alice-co: 80% of the monthly spend cap reached"]

    delivery = webhook_delivery(tenant)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 1, 200)
    log = signed_in("alice@example.com").get("/t/alice-co/billing/alerts/").content.decode()
    assert event["id"] in log and "HTTP 200" in log and "Delivered" in log and "80% of the monthly spend cap" in log
    # Charlie's tenant: not in his log, and Alice's delivery is not his to send again.
    charlie = signed_in("charlie@example.com")
    assert event["id"] not in charlie.get("/t/charlie-co/billing/alerts/").content.decode()
    assert charlie.post(f"/t/charlie-co/billing/alerts/deliveries/{delivery.pk}/redeliver/").status_code == 404
    assert charlie.get("/t/alice-co/billing/alerts/").status_code == 404
    assert signed_in("bob@example.com").get("/t/alice-co/billing/alerts/").status_code == 403  # a member
    assert AlertDelivery.objects.filter(tenant=tenant).count() == 2  # the mail and the webhook, once


def test_a_failed_delivery_is_retried_with_exponential_backoff(tenant, receiver):
    secret = set_webhook(f"{receiver.address}/hook")
    receiver.statuses.extend([500, 503])
    spend(tenant, "130")
    run_job(NOW)
    delivery = webhook_delivery(tenant)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 1, 500)
    assert delivery.next_attempt_at == NOW + timedelta(seconds=60)

    assert deliver(NOW + timedelta(seconds=59)) == []  # not due yet
    deliver(NOW + timedelta(seconds=60))
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.response_status) == (2, 503)
    assert delivery.next_attempt_at == NOW + timedelta(seconds=60 + 120)  # doubled

    assert deliver(NOW + timedelta(seconds=179)) == []
    deliver(NOW + timedelta(seconds=180))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status, delivery.next_attempt_at) == (
        "succeeded", 3, 200, None)
    bodies = {post["body"] for post in receiver.received}
    assert len(receiver.received) == 3 and len(bodies) == 1  # the same event each time
    for post, seconds in zip(receiver.received, (0, 60, 180), strict=True):
        assert verify(secret, post["headers"], post["body"], now=(NOW + timedelta(seconds=seconds)).timestamp())
    assert len(mail.outbox) == 1


def test_a_delivery_that_gave_up_is_sent_again_from_the_log(tenant, receiver, settings):
    settings.ALERT_MAX_ATTEMPTS = 2
    set_webhook(f"{receiver.address}/hook")
    receiver.statuses.extend([500, 500])
    spend(tenant, "130")
    run_job(NOW)
    deliver(NOW + timedelta(seconds=60))
    failed = webhook_delivery(tenant)
    assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", 2, None)
    assert deliver(NOW + timedelta(days=1)) == []  # given up

    browser = signed_in("alice@example.com")
    page = browser.post(f"/t/alice-co/billing/alerts/deliveries/{failed.pk}/redeliver/", follow=True)
    assert "queued to be sent again" in page.content.decode()
    deliver(timezone.now())
    again = webhook_delivery(tenant)
    assert again.pk != failed.pk and again.redelivery_of_id == failed.pk and again.status == "succeeded"
    assert again.event_id == failed.event_id and receiver.received[-1]["body"] == receiver.received[0]["body"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{internal}/hook",       # plain http to an address not allowed
    "https://127.0.0.1:{internal}/hook",      # loopback
    "https://10.0.0.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::ffff:127.0.0.1]/hook",
    "https://localhost/hook",
    "ftp://example.org/hook",
    "data:text/plain,hello",
])
def test_a_private_or_non_https_url_is_refused_when_saved(tenant, internal, url):
    page = signed_in("alice@example.com").post("/t/alice-co/billing/alerts/", {
        "thresholds": "50", "webhook_url": url.format(internal=internal.port)})
    assert page.status_code == 400
    assert re.search(r"refused|not a valid URL", page.content.decode())
    assert not AlertSettings.objects.filter(tenant=tenant).exclude(webhook_url="").exists()


def test_a_redirect_into_the_network_is_refused_at_delivery(tenant, receiver, internal):
    set_webhook(f"{receiver.address}/moved?status=307&to=https://127.0.0.1:{internal.port}/hook")
    spend(tenant, "130")
    run_job(NOW)
    delivery = webhook_delivery(tenant)
    assert (delivery.status, delivery.attempts) == ("failed", 1)  # the policy's refusal is not retried
    assert "not a public internet address" in delivery.error


def test_an_address_that_became_private_is_refused_at_delivery(tenant, receiver, internal):
    set_webhook(f"{receiver.address}/hook")
    # What a DNS change after the save would do: the same check runs again before each POST.
    AlertSettings.objects.filter(tenant=tenant).update(webhook_url=f"https://127.0.0.1:{internal.port}/hook")
    spend(tenant, "130")
    run_job(NOW)
    delivery = webhook_delivery(tenant)
    assert delivery.status == "failed" and "not a public internet address" in delivery.error
    assert receiver.received == []


def test_a_post_follows_307_with_its_body_but_not_302(tenant, receiver):
    secret = set_webhook(f"{receiver.address}/moved?status=307&to=/hook")
    spend(tenant, "130")
    run_job(NOW)
    [post] = receiver.received
    assert post["method"] == "POST" and verify(secret, post["headers"], post["body"], now=NOW.timestamp())
    assert webhook_delivery(tenant).status == "succeeded"

    AlertSettings.objects.filter(tenant=tenant).update(webhook_url=f"{receiver.address}/moved?status=302&to=/hook")
    spend(tenant, "210")
    run_job(NOW + timedelta(minutes=1))
    delivery = webhook_delivery(tenant)
    assert (delivery.status, delivery.response_status) == ("pending", 302) and "HTTP 302" in delivery.error
    assert len(receiver.received) == 1


def test_a_rotated_secret_signs_the_test_event(tenant, receiver):
    old = set_webhook(f"{receiver.address}/hook")
    browser = signed_in("alice@example.com")
    page = browser.post("/t/alice-co/billing/alerts/secret/")
    new = re.search(r'data-testid="webhook-secret">([^<]+)<', page.content.decode()).group(1)
    assert new != old and page["Cache-Control"] == "no-store"
    assert "test event is on its way" in browser.post("/t/alice-co/billing/alerts/test/", follow=True).content.decode()
    deliver(timezone.now())
    [post] = receiver.received
    assert json.loads(post["body"])["type"] == "ping" and post["headers"]["Tollgate-Event-Type"] == "ping"
    assert verify(new, post["headers"], post["body"]) and not verify(old, post["headers"], post["body"])
    log = browser.get("/t/alice-co/billing/alerts/").content.decode()
    assert json.loads(post["body"])["id"] in log and "Delivered" in log and new not in log


def test_concurrent_senders_post_each_event_once(tenant, receiver):
    set_webhook(f"{receiver.address}/hook")
    spend(tenant, "130")
    alerts.check_budget_alerts(now=NOW)
    start = threading.Barrier(6)

    def sender() -> None:
        try:
            start.wait(10)
            deliver(NOW)
        finally:
            connections.close_all()
    threads = [threading.Thread(target=sender) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(receiver.received) == 1 and len(mail.outbox) == 1
    assert webhook_delivery(tenant).attempts == 1


def test_a_webhook_url_longer_than_500_characters_is_refused_when_saved(tenant, receiver):
    url = f"{receiver.address}/hook?{'q' * 500}"
    page = signed_in("alice@example.com").post("/t/alice-co/billing/alerts/", {"thresholds": "50", "webhook_url": url})
    assert page.status_code == 400 and "longer than 500 characters" in page.content.decode()
    api = signed_in("alice@example.com").patch("/api/tenants/alice-co/alerts/", json.dumps({"webhook_url": url}),
                                               content_type="application/json")
    assert api.status_code == 400 and "webhook_url" in api.json()["error"]["fields"]
    assert not AlertSettings.objects.filter(tenant=tenant).exclude(webhook_url="").exists()
    set_webhook(url[:500])  # 500 fit
    assert AlertSettings.objects.get(tenant=tenant).webhook_url == url[:500]
