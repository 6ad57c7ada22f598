"""The management API's spend alerts: thresholds and webhook (the secret returned once), its
rotation, the delivery log and redelivery; owners, admins (a management key) and billing members
may, members may not, outsiders get 404."""

import json

from django.utils import timezone

from gateway.models import Role
from tests.fakes.webhook_receiver import verify
from tests.test_alert_webhooks import deliver, internal, policy, receiver  # noqa: F401 (fixtures)
from tests.test_management_api_keys import add_member, management_key, signed_in, with_key
from tests.test_spend_alerts import NOW, run_job, spend

ALERTS = "/api/tenants/alice-co/alerts/"


def patch(browser, path: str, body: dict):
    return browser.patch(path, json.dumps(body), content_type="application/json")


def test_a_management_key_sets_thresholds_and_a_webhook(tenant, other_tenant, receiver):  # noqa: F811
    key = with_key(management_key(tenant))
    assert key.get(ALERTS).json() == {"thresholds": [50, 80, 100], "webhook_url": "", "webhook_secret_hint": ""}

    answer = patch(key, ALERTS, {"thresholds": [90, 75, 75], "webhook_url": f"{receiver.address}/hook"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    secret = body["webhook_secret"]
    assert answer["Cache-Control"] == "no-store" and body["thresholds"] == [75, 90]
    assert body["webhook_secret_hint"] == secret[-4:]
    assert "webhook_secret" not in key.get(ALERTS).json()  # shown once

    again = patch(key, ALERTS, {"thresholds": [50]})  # the URL left out stays, the secret with it
    assert again.json() == {"thresholds": [50], "webhook_url": f"{receiver.address}/hook",
                            "webhook_secret_hint": secret[-4:]}

    spend(tenant, "130")
    run_job(NOW)
    [post] = receiver.received
    assert verify(secret, post["headers"], post["body"], now=NOW.timestamp())
    [mailed, posted] = sorted(key.get(f"{ALERTS}deliveries/").json(), key=lambda row: row["channel"])
    assert (posted["channel"], posted["status"], posted["threshold"], posted["response_status"]) == (
        "webhook", "succeeded", 50, 200)
    assert mailed["channel"] == "mail" and mailed["event_id"] == posted["event_id"]

    resent = key.post(f"{ALERTS}deliveries/{posted['id']}/redeliver/")
    assert resent.status_code == 201 and resent.json()["redelivery_of"] == posted["id"]
    assert key.post(f"{ALERTS}deliveries/{mailed['id']}/redeliver/").status_code == 409  # a mail
    assert key.post(f"{ALERTS}deliveries/{resent.json()['id']}/redeliver/").status_code == 409  # still pending
    deliver(timezone.now())
    assert len(receiver.received) == 2

    rotated = key.post(f"{ALERTS}secret/")
    assert rotated["Cache-Control"] == "no-store" and rotated.json()["webhook_secret"] != secret

    # Charlie's key and session: Alice's tenant does not exist for them.
    charlie_key = with_key(management_key(other_tenant))
    assert charlie_key.get(ALERTS).status_code == 404
    assert charlie_key.post(f"{ALERTS}deliveries/{posted['id']}/redeliver/").status_code == 404
    assert charlie_key.post(f"/api/tenants/charlie-co/alerts/deliveries/{posted['id']}/redeliver/").status_code == 404
    assert charlie_key.get("/api/tenants/charlie-co/alerts/deliveries/").json() == []
    assert signed_in("charlie@example.com").get(ALERTS).status_code == 404


def test_a_private_webhook_url_is_a_400_naming_the_field(tenant, internal):  # noqa: F811
    alice = signed_in("alice@example.com")
    answer = patch(alice, ALERTS, {"webhook_url": f"https://127.0.0.1:{internal.port}/hook"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "not a public internet address" in error["message"] and "webhook_url" in error["fields"]
    assert patch(alice, ALERTS, {"thresholds": [0]}).status_code == 400
    assert alice.get(ALERTS).json()["webhook_url"] == ""


def test_billing_members_may_and_members_may_not(tenant):
    add_member(tenant, "pay@example.com", Role.BILLING)
    add_member(tenant, "bob@example.com", Role.MEMBER)
    assert patch(signed_in("pay@example.com"), ALERTS, {"thresholds": [10]}).status_code == 200
    refused = patch(signed_in("bob@example.com"), ALERTS, {"thresholds": [90]})
    assert refused.status_code == 403 and "owner, admin or billing" in refused.json()["error"]["message"]
    assert signed_in("bob@example.com").get(f"{ALERTS}deliveries/").status_code == 403
