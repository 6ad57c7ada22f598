"""Outside /v1 (pages, the admin, /api/, Stripe webhooks) a request body is limited while it is
read: a declared length over MAX_REQUEST_BODY_BYTES is a 413 before the body is sent, a chunked
body is cut at the limit. Over a real socket to the served app: were the body spooled first,
these requests would wait for the rest of it and time out."""

import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest

LIMIT = 1024
PATHS = ["/accounts/login/", "/admin/login/", "/api/tenants/", "/billing/stripe/webhook"]


@pytest.fixture
def small_limit(settings):
    settings.MAX_REQUEST_BODY_BYTES = LIMIT


def exchange(gateway_url: str, head: str, body_parts: list[bytes]) -> tuple[int, dict, bytes]:
    """Send a raw request (never finishing its body) and read the whole answer."""
    address = urlsplit(gateway_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head.encode())
        for part in body_parts:
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("path", PATHS)
def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(gateway_url, small_limit, path):
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\n\r\n")
    status, headers, body = exchange(gateway_url, head, [])
    assert status == 413
    assert f"larger than the {LIMIT} bytes" in body.decode()
    if path.startswith("/api/"):
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"]["code"] == "too_large"


@pytest.mark.parametrize("path", PATHS)
def test_a_chunked_body_is_cut_at_the_limit(gateway_url, small_limit, path):
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"400\r\n" + b"x" * 0x400 + b"\r\n"
    status, _, body = exchange(gateway_url, head, [chunk, chunk])  # 2 KiB of an endless body
    assert status == 413 and b"larger than the 1024 bytes" in body


def test_bodies_within_the_limit_reach_the_app(gateway_url, small_limit, stripe_fake):
    webhook = httpx.post(f"{gateway_url}/billing/stripe/webhook", content=b"{}" + b" " * 1000,
                         headers={"Stripe-Signature": "t=1,v1=forged"})
    assert webhook.status_code == 400  # read, and refused for its signature
    chunked = httpx.post(f"{gateway_url}/accounts/login/", content=iter([b"username=a&", b"password=b"]),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert chunked.status_code == 403  # read, and refused for want of a CSRF token


def test_v1_keeps_its_own_limit(gateway_url, small_limit, http, tenant, other_tenant):
    answer = http.post("/chat/completions", json={"model": "demo/echo", "messages": [
        {"role": "user", "content": "long " * 1000}]})
    assert answer.status_code == 200  # 5 KB, over MAX_REQUEST_BODY_BYTES, within API_MAX_BODY_BYTES
