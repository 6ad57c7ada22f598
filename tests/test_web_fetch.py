"""The web_fetch tool's page reading (providers/web_fetch.py) against page servers on 127.0.0.1,
allowed through the outbound-fetch policy as an operator would allow a host, and an "internal"
server standing for the operator's network, which must never receive a request."""

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from providers import web_fetch
from providers.outbound import UrlRefused
from providers.web_fetch import WebPage, read_page
from tests.fakes.server import ThreadedServer
from tests.test_outbound_fetch import InternalServer

ARTICLE = (Path(__file__).parent / "pages" / "tide_tables.html").read_bytes()


class SiteServer(ThreadedServer):
    """A small web site: the article, a redirect, an image, an empty page, and a robots.txt the
    test sets (None: 404). Counts the requests for each path."""

    def __init__(self) -> None:
        super().__init__()
        self.robots: str | None = None
        self.robots_status = 200
        self.hits: list[str] = []

    def app(self) -> web.Application:
        async def robots(request):
            if self.robots is None:
                return web.Response(status=404)
            return web.Response(text=self.robots, status=self.robots_status)

        async def article(request):
            return web.Response(body=ARTICLE, content_type="text/html", charset="utf-8")

        async def redirect(request):
            raise web.HTTPFound(request.query["to"])

        async def image(request):
            return web.Response(body=b"\x89PNG\r\n\x1a\n", content_type="image/png")

        async def long_title(request):
            long = "Marées ".encode() * 2000
            page = ARTICLE.replace(b"<title>", b"<title>" + long, 1).replace(b'content="How', b'content="' + long, 1)
            return web.Response(body=page, content_type="text/html", charset="utf-8")

        async def empty(request):
            return web.Response(text="<html><head></head><body><script>x()</script></body></html>",
                                content_type="text/html")

        @web.middleware
        async def count(request, handler):
            self.hits.append(request.path)
            return await handler(request)

        app = web.Application(middlewares=[count])
        app.router.add_get("/robots.txt", robots)
        app.router.add_get("/guides/tide-tables", article)
        app.router.add_get("/private/tide-tables", article)
        app.router.add_get("/go", redirect)
        app.router.add_get("/chart.png", image)
        app.router.add_get("/empty", empty)
        app.router.add_get("/long-title", long_title)
        return app


@pytest.fixture(scope="module")
def site():
    server = SiteServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def other_site():
    server = SiteServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def internal():
    server = InternalServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def policy(settings, site, other_site, internal):
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{site.port}", f"127.0.0.1:{other_site.port}"]
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    settings.OUTBOUND_TIMEOUT_SECONDS = 5.0
    for server in (site, other_site):
        server.robots, server.robots_status = None, 200
        server.hits.clear()
    internal.hits.clear()
    web_fetch.forget_robots()
    yield
    web_fetch.forget_robots()
    assert internal.hits == []  # whatever a test did, the internal server was never reached


def read(url: str, **options) -> WebPage:
    return asyncio.run(read_page(url, **options))


def refused(url: str) -> UrlRefused:
    with pytest.raises(UrlRefused) as caught:
        read(url)
    return caught.value


def test_a_page_is_read_as_its_title_and_article_text(site):
    page = read(f"{site.address}/guides/tide-tables")
    assert page.title == "How to Read a Tide Table"
    assert page.final_url == page.url == f"{site.address}/guides/tide-tables" and not page.truncated
    assert "measured from chart datum" in page.text and "rule of twelfths" in page.text
    assert "spring tides" in page.text
    for boilerplate in ("cookies", "Subscribe", "Advertisement", "All rights reserved", "pageview", "dataLayer"):
        assert boilerplate not in page.text


def test_text_past_the_budget_is_cut_at_a_word(site):
    page = read(f"{site.address}/guides/tide-tables", max_chars=300)
    assert page.truncated and len(page.text) <= 300
    full = read(f"{site.address}/guides/tide-tables").text
    assert full.startswith(page.text) and full[len(page.text)] in " \n"


def test_the_budget_defaults_to_the_setting(site, settings):
    settings.WEB_FETCH_MAX_CHARS = 100
    page = read(f"{site.address}/guides/tide-tables")
    assert page.truncated and len(page.text) <= 100


def test_a_redirect_is_followed_and_the_final_url_is_the_citation(site):
    page = read(f"{site.address}/go?to=/guides/tide-tables")
    assert page.final_url == f"{site.address}/guides/tide-tables" and page.title == "How to Read a Tide Table"


def test_a_path_robots_txt_disallows_is_not_read(site):
    site.robots = "User-agent: *\nDisallow: /private/\n"
    error = refused(f"{site.address}/private/tide-tables")
    assert error.rule == "robots" and "does not allow" in error.message
    assert error.status == 400 and error.client_caused and not error.retryable
    assert "/private/tide-tables" not in site.hits
    assert read(f"{site.address}/guides/tide-tables").title  # the rest of the site is readable


def test_robots_txt_naming_the_gateway_is_honoured(site):
    site.robots = "User-agent: Tollgate-fetch\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    assert refused(f"{site.address}/guides/tide-tables").rule == "robots"


def test_robots_txt_is_read_once_per_site_while_cached(site):
    site.robots = "User-agent: *\nAllow: /\n"
    read(f"{site.address}/guides/tide-tables")
    read(f"{site.address}/go?to=/guides/tide-tables")
    assert site.hits.count("/robots.txt") == 1


def test_a_site_whose_robots_txt_fails_is_not_read(site):
    site.robots, site.robots_status = "oops", 503
    error = refused(f"{site.address}/guides/tide-tables")
    assert error.rule == "robots" and "could not be read" in error.message
    assert "/guides/tide-tables" not in site.hits


def test_a_redirect_to_another_site_answers_to_that_sites_robots_txt(site, other_site):
    other_site.robots = "User-agent: *\nDisallow: /\n"
    error = refused(f"{site.address}/go?to={other_site.address}/guides/tide-tables")
    assert error.rule == "robots" and "does not allow" in error.message
    assert other_site.hits == ["/robots.txt"]  # the page itself was never requested


@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/meta-data/",   # the cloud metadata service
    "https://10.0.0.7/admin",                       # a private address
    "https://localhost/",                           # a name that resolves to loopback
])
def test_a_private_address_is_refused(url):
    error = refused(url)
    assert error.rule == "address"
    assert "127.0.0.1" not in error.message and "::1" not in error.message  # what an internal name resolves to stays inside


def test_a_redirect_into_the_network_is_refused(site, internal):
    error = refused(f"{site.address}/go?to=https://127.0.0.1:{internal.port}/latest/meta-data/")
    assert error.rule == "address" and "not a public internet address" in error.message


@pytest.mark.parametrize("url, rule", [
    ("http://93.184.216.34/page", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("data:text/html,<title>x</title>", "scheme"),
])
def test_only_https_urls_are_read(url, rule):
    assert refused(url).rule == rule


def test_a_long_title_is_cut_like_the_text(site):
    page = read(f"{site.address}/long-title")
    assert page.title.startswith("Marées Marées") and len(page.title) <= web_fetch.TITLE_MAX_CHARS
    assert "chart datum" in page.text


def test_a_url_that_is_not_unicode_text_is_refused():
    assert refused("https://example.org/\ud800").rule == "url"


def test_a_file_that_is_not_a_page_is_refused(site):
    error = refused(f"{site.address}/chart.png")
    assert error.rule == "content" and "image/png" in error.message


def test_a_page_without_text_is_unreadable(site):
    assert refused(f"{site.address}/empty").rule == "unreadable"
