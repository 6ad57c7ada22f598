"""Every /v1 answer carries nosniff and no-referrer (the API bypasses Django's middleware), and
stored media is served as data: a known media type inline, anything else (HTML, SVG, whatever a
provider claimed) as an octet-stream attachment, always under a sandbox CSP."""

import httpx
import pytest

from media.files import store_media
from media.models import MediaFile

SECURITY_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def has_security_headers(response: httpx.Response) -> bool:
    return all(response.headers.get(name) == value for name, value in SECURITY_HEADERS.items())


def test_every_v1_answer_says_nosniff_and_no_referrer(gateway_url, http, settings):
    assert http.get("/models").status_code == 200 and has_security_headers(http.get("/models"))
    unauthenticated = httpx.get(f"{gateway_url}/v1/models")
    assert unauthenticated.status_code == 401 and has_security_headers(unauthenticated)
    missing = http.get("/no-such-endpoint")
    assert missing.status_code == 404 and has_security_headers(missing)
    settings.API_MAX_BODY_BYTES = 100
    too_large = http.post("/chat/completions", json={"model": "demo/echo", "messages": [
        {"role": "user", "content": "x" * 200}]})
    assert too_large.status_code == 413 and has_security_headers(too_large)
    settings.API_MAX_BODY_BYTES = 4 * 1024 * 1024
    with http.stream("POST", "/chat/completions", json={"model": "demo/echo", "stream": True, "messages": [
            {"role": "user", "content": "hi"}]}) as streamed:
        assert streamed.status_code == 200 and has_security_headers(streamed)


def stored(tenant, content_type: str, content: bytes) -> MediaFile:
    return store_media(tenant_id=tenant.pk, request_id="req_test", kind="image", content=content,
                       content_type=content_type)


@pytest.mark.parametrize(("stored_type", "served_type", "disposition"), [
    ("image/png", "image/png", "inline"),
    ("video/mp4", "video/mp4", "inline"),
    ("audio/L16;codec=pcm;rate=24000", "audio/l16; codec=pcm; rate=24000", "inline"),
    ("text/html", "application/octet-stream", "attachment"),
    ("image/svg+xml", "application/octet-stream", "attachment"),
    ("application/xhtml+xml; charset=utf-8", "application/octet-stream", "attachment"),
    ("image/png\r\nX-Injected: 1", "application/octet-stream", "attachment"),
])
def test_media_is_served_only_as_a_known_media_type(http, other_http, tenant, other_tenant, stored_type,
                                                    served_type, disposition):
    file = stored(tenant, stored_type, b"<html><script>alert(1)</script></html>")
    answer = http.get(f"/media/{file.id}/content")
    assert answer.status_code == 200 and answer.content.startswith(b"<html>")
    assert answer.headers["content-type"] == served_type
    assert answer.headers["content-disposition"].startswith(f'{disposition}; filename="{file.id}.')
    assert answer.headers["content-security-policy"] == "sandbox"
    assert has_security_headers(answer)
    assert other_http.get(f"/media/{file.id}/content").status_code == 404


def test_an_html_file_is_an_attachment_named_bin_through_its_signed_url_too(http, tenant, other_tenant):
    file = stored(tenant, "text/html; charset=utf-8", b"<h1>hi</h1>")
    signed = http.get(f"/media/{file.id}").json()["url"]
    answer = httpx.get(signed)
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"] == f'attachment; filename="{file.id}.bin"'
    assert answer.headers["content-security-policy"] == "sandbox" and has_security_headers(answer)
