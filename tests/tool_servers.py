"""What the gateway's tools reach in the tool-loop tests, over real sockets on 127.0.0.1: a small
web site (allowed through the outbound-fetch policy as an operator allows a host), an "internal"
server that must never be reached, and the reference Python executor. Test modules import these
fixtures by name."""

import pytest

from providers import web_fetch
from tests.test_outbound_fetch import InternalServer
from tests.test_python_executor import KEY, ExecutorServer
from tests.test_web_fetch import SiteServer

ARTICLE = "/guides/tide-tables"
TITLE = "How to Read a Tide Table"


@pytest.fixture(scope="module")
def page_site():
    server = SiteServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def internal_site():
    server = InternalServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def python_executor():
    server = ExecutorServer().start()
    yield server
    server.stop()


@pytest.fixture
def tools_reachable(settings, page_site, internal_site, python_executor):
    """The site allowed by the outbound policy, the executor configured; afterwards, the internal
    server was never reached, whatever the test did."""
    site, internal = page_site, internal_site
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{site.port}"]
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    settings.OUTBOUND_TIMEOUT_SECONDS = 5.0
    settings.PYTHON_EXECUTOR_URL, settings.PYTHON_EXECUTOR_KEY = python_executor.address, KEY
    settings.CODE_INTERPRETER_TIMEOUT_SECONDS = 5.0
    site.robots, site.robots_status = None, 200
    site.hits.clear()
    internal.hits.clear()
    web_fetch.forget_robots()
    yield
    web_fetch.forget_robots()
    assert internal.hits == []
