"""Members watching their tenant's usage over a WebSocket see each request as it settles."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect


def session_cookie(email: str) -> str:
    browser = Client()
    browser.force_login(get_user_model().objects.get(email=email))
    return f"sessionid={browser.cookies['sessionid'].value}"


def open_socket(gateway_url: str, tenant_slug: str, cookie: str):
    url = gateway_url.replace("http://", "ws://") + f"/ws/tenants/{tenant_slug}/usage/"
    return connect(url, additional_headers={"Cookie": cookie, "Origin": gateway_url})


def test_member_sees_each_settled_request(gateway_url, client, tenant):
    with open_socket(gateway_url, tenant.slug, session_cookie("alice@example.com")) as socket:
        client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "live one"}])
        event = json.loads(socket.recv(timeout=5))
    assert event["model"] == "demo/echo"
    assert event["output_tokens"] == 2
    assert event["ending"] == "completed"
    assert event["cost"].startswith("0.0000")


@pytest.mark.parametrize("email", ["charlie@example.com", None])
def test_outsider_and_anonymous_are_refused_at_the_handshake(gateway_url, tenant, other_tenant, email):
    cookie = session_cookie(email) if email else ""
    with pytest.raises(InvalidStatus) as refused:
        open_socket(gateway_url, tenant.slug, cookie)
    assert refused.value.response.status_code == 403
