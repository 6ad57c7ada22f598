"""The outbound-fetch policy (providers/outbound.py) against real sockets on 127.0.0.1: a page
server the test allows as the operator would allow its media bucket, and an "internal" server
standing for the operator's network, which must never receive a request."""

import asyncio
from decimal import Decimal

import pytest
from aiohttp import web

from media.models import VideoJob
from providers import outbound
from tests.fakes.server import ThreadedServer
from tests.test_video_providers import finished
from usage.models import MonthlySpend, UsageRecord

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class InternalServer(ThreadedServer):
    """Stands for the metadata service or an admin port: counts whatever reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[str] = []

    def app(self) -> web.Application:
        async def anything(request: web.Request) -> web.Response:
            self.hits.append(request.path)
            return web.Response(text="secret")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", anything)
        return app


class PageServer(ThreadedServer):
    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    def app(self) -> web.Application:
        async def image(request):
            return web.Response(body=PNG, content_type="image/png")

        async def redirect(request):
            raise web.HTTPFound(request.query["to"])

        async def big(request):
            return web.Response(body=b"x" * 5000, content_type="image/png")

        async def big_chunked(request):
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(10):
                await response.write(b"x" * 1000)
            return response

        async def stalls(request):
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            await response.prepare(request)
            await response.write(b"x")
            await self.release.wait()  # never set: the body stalls after its first byte
            return response

        async def missing(request):
            return web.Response(status=404)

        app = web.Application()
        app.router.add_get("/image.png", image)
        app.router.add_get("/redirect", redirect)
        app.router.add_get("/big", big)
        app.router.add_get("/big-chunked", big_chunked)
        app.router.add_get("/stalls", stalls)
        app.router.add_get("/missing", missing)
        return app

    def stop(self) -> None:
        if self.loop is not None:  # let a stalled body end, or the server waits for it when it stops
            self.loop.call_soon_threadsafe(self.release.set)
        super().stop()


@pytest.fixture(scope="module")
def internal():
    server = InternalServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pages():
    server = PageServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def policy(settings, pages, internal):
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{pages.port}"]  # the page server only, not the internal one
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    settings.OUTBOUND_MAX_BYTES = 4096
    settings.OUTBOUND_TIMEOUT_SECONDS = 1.0
    settings.OUTBOUND_MAX_REDIRECTS = 3
    internal.hits.clear()
    yield
    assert internal.hits == []  # whatever a test did, the internal server was never reached


def fetch(url: str) -> outbound.Fetched:
    return asyncio.run(outbound.fetch(url))


def refused(url: str, *, check: bool = False) -> outbound.UrlRefused:
    with pytest.raises(outbound.UrlRefused) as caught:
        asyncio.run(outbound.check_url(url) if check else outbound.fetch(url))
    return caught.value


def test_an_allowed_host_is_fetched(pages):
    fetched = fetch(f"{pages.address}/image.png")
    assert (fetched.content, fetched.content_type) == (PNG, "image/png")


def test_a_redirect_within_allowed_hosts_is_followed(pages):
    fetched = fetch(f"{pages.address}/redirect?to=/image.png")
    assert fetched.content == PNG and fetched.url.endswith("/image.png")


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{internal}/latest/meta-data/",       # plain http to an address not allowed
    "https://127.0.0.1:{internal}/latest/meta-data/",      # loopback
    "https://169.254.169.254/latest/meta-data/iam/",       # the cloud metadata service
    "https://[::ffff:127.0.0.1]:{internal}/",              # loopback, IPv4-mapped
    "https://localhost:{internal}/",                       # a name that resolves to loopback
])
def test_a_redirect_chain_that_ends_inside_the_network_is_refused(pages, internal, target):
    final = target.format(internal=internal.port)
    hop2 = f"{pages.address}/redirect?to={final}"
    error = refused(f"{pages.address}/redirect?to={hop2.replace('?', '%3F').replace('=', '%3D')}")
    assert error.rule in ("scheme", "address")


@pytest.mark.parametrize("url, rule", [
    ("http://93.184.216.34/a.png", "scheme"),
    ("ftp://example.org/a.png", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("https://user:pw@93.184.216.34/a.png", "url"),
    ("https://10.0.0.1/a.png", "address"),
    ("https://172.16.5.4/a.png", "address"),
    ("https://192.168.1.1/a.png", "address"),
    ("https://100.64.0.1/a.png", "address"),            # CGNAT
    ("https://169.254.169.254/a.png", "address"),       # link-local, the metadata service
    ("https://0.0.0.0/a.png", "address"),
    ("https://224.0.0.1/a.png", "address"),             # multicast
    ("https://[::1]/a.png", "address"),
    ("https://[::]/a.png", "address"),
    ("https://[fe80::1]/a.png", "address"),
    ("https://[fc00::1]/a.png", "address"),
    ("https://[::ffff:10.0.0.1]/a.png", "address"),      # IPv4-mapped
    ("https://[64:ff9b::a9fe:a9fe]/a.png", "address"),   # NAT64 of 169.254.169.254
    ("https://[2002:a00:1::]/a.png", "address"),         # 6to4 of 10.0.0.1
    ("https://localhost/a.png", "address"),
])
def test_private_addresses_and_other_schemes_are_refused_at_admission(url, rule):
    assert refused(url, check=True).rule == rule


def test_a_public_address_passes_the_admission_check():
    asyncio.run(outbound.check_url("https://93.184.216.34/a.png"))
    asyncio.run(outbound.check_url("https://[2606:2800:220:1:248:1893:25c8:1946]/a.png"))


def test_an_operator_network_may_be_private(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    asyncio.run(outbound.check_url("https://10.20.3.4/a.png"))
    assert refused("https://10.21.0.1/a.png", check=True).rule == "address"


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_a_body_over_the_cap_is_refused(pages, path):
    assert refused(f"{pages.address}{path}").rule == "size"


def test_a_data_url_over_the_cap_is_refused():
    assert refused("data:image/png;base64," + "A" * 8000).rule == "size"


def test_a_slow_body_is_cut_at_the_time_cap(pages, settings):
    settings.OUTBOUND_TIMEOUT_SECONDS = 0.3
    assert refused(f"{pages.address}/stalls").rule == "time"


def test_too_many_redirects_are_refused(pages):
    url = f"{pages.address}/image.png"
    for _ in range(5):
        url = f"{pages.address}/redirect?to={url.replace('%', '%25').replace('?', '%3F').replace('=', '%3D')}"
    assert refused(url).rule == "redirects"


def test_an_error_status_is_the_clients_url_failing(pages):
    error = refused(f"{pages.address}/missing")
    assert error.rule == "status" and error.status == 400 and not error.retryable and error.client_caused


SORA = "openai/sora-2"


def test_a_private_image_url_is_refused_before_anything_is_reserved(http, tenant):
    answer = http.post("/videos", json={"model": SORA, "prompt": "x", "image_url": "https://169.254.169.254/latest/"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["param"], error["code"]) == ("image_url", "invalid_url")
    assert "169.254.169.254" in error["message"] and "not a public internet address" in error["message"]
    assert not VideoJob.objects.exists() and not UsageRecord.objects.exists()
    assert not MonthlySpend.objects.filter(tenant=tenant, reserved__gt=0).exists()


def test_a_job_whose_url_turns_inward_later_fails_at_once_refunded_and_opens_no_breaker(
        http, video_worker, fake_openai, pages, internal, settings, tenant):
    settings.BREAKER_FAILURES = 1  # one failure counted against Sora would open its breaker for everyone
    inward = f"{pages.address}/redirect?to=https://127.0.0.1:{internal.port}/latest/meta-data/"
    created = http.post("/videos", json={"model": SORA, "prompt": "x", "image_url": inward})
    assert created.status_code == 200, created.text  # the allowed host passed admission; its redirect did not
    done = finished(http, created.json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "invalid_url"
    assert "not a public internet address" in done["error"]["message"]
    job = VideoJob.objects.get(pk=done["id"])
    assert job.attempts == 0  # not retried
    record = UsageRecord.objects.get(request_id=done["request_id"])
    assert record.cost == Decimal(0)
    assert MonthlySpend.objects.get(tenant=tenant).reserved == Decimal(0)
    assert not fake_openai.videos.jobs  # Sora was never asked
    following = http.post("/videos", json={"model": SORA, "prompt": "y"})
    assert finished(http, following.json()["id"])["status"] == "completed"  # Sora's breaker stayed closed
