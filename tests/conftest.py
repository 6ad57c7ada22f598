"""Shared fixtures: the gateway served over real HTTP, a fake OpenAI upstream, tenants and keys.

Every tenant-data test has an outsider: ``other_tenant`` (Charlie's) must never see ``tenant``'s
(Alice's) data.
"""

import asyncio
import os
import socket
import threading
import time

import anthropic
import httpx
import openai
import pytest
import uvicorn
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management.color import no_style
from django.db import connections
from django.test import Client, TransactionTestCase

from billing import rate_limits, spend_limits
from billing.models import Plan, Subscription
from billing.plans import seed_plans
from caching import semantic
from caching import store as caching_store
from gateway import api_keys
from gateway.api_keys import issue_api_key
from gateway.models import Membership
from gateway.serving.meter import unsettled
from gateway.tenants import create_tenant
from providers import breaker, router
from providers.catalog_seed import read_catalog, seed_catalog
from providers.http import close_client
from providers.models import Credential, Provider
from providers.types import Target
from tests.fakes import anthropic_upstream
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import API_KEY, FakeOpenAI
from tests.fakes.stripe_api import FakeStripe, use_fake_stripe
from usage.leases import book
from usage.writer import writer

# Gateway processes a test starts give their leases back at once too (leases_given_back_at_once).
os.environ.setdefault("BUDGET_LEASE_IDLE_SECONDS", "0")

pytest_plugins = [
    "tests.gateway_processes",  # the processes fixture: gateway processes of their own
    "tests.fake_providers",  # fake upstreams of the media, Gemini and Cohere providers
    "tests.tool_servers",
    "tests.redis_server",  # redis_url: a redis-server of the test module  # what the gateway's tools reach: a web site, an internal server, the executor
]

PASSWORD = "correct horse battery staple"
PRICES = {"basic": "price_basic_monthly", "pro": "price_pro_monthly", "enterprise": "price_enterprise_monthly"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def fake_openai():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def gateway_url():
    """The ASGI app (HTTP and WebSocket) under uvicorn in a thread of this process."""
    from gateway.asgi import application

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", ws="websockets-sansio", loop="asyncio"))

    def serve() -> None:
        loop = asyncio.new_event_loop()
        loop.run_until_complete(server.serve())  # its lifespan shutdown closes the upstream pool
        loop.close()

    thread = threading.Thread(target=serve, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start within 15s")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


# Rows that migrations' post_migrate handlers write (content types, permissions) and the
# migration history: the same in every test, so a flush between tests keeps them.
KEPT_BETWEEN_TESTS = {"django_content_type", "auth_permission", "django_migrations"}


def flush_keeping_content_types(test_case) -> None:
    """TransactionTestCase's flush less what is the same in every test: Django's empties every
    table and then re-creates content types and permissions (post_migrate), a tenth of a second
    per test."""
    for alias in test_case._databases_names(include_mirrors=False):
        connection = connections[alias]
        tables = [table for table in connection.introspection.django_table_names(only_existing=True,
                                                                                 include_views=False)
                  if table not in KEPT_BETWEEN_TESTS]
        connection.ops.execute_sql_flush(connection.ops.sql_flush(no_style(), tables))


@pytest.fixture(scope="session", autouse=True)
def quick_flush():
    original = TransactionTestCase._fixture_teardown
    TransactionTestCase._fixture_teardown = flush_keeping_content_types
    yield
    TransactionTestCase._fixture_teardown = original


@pytest.fixture(scope="session", autouse=True)
def ledger_writer(django_db_setup, django_db_blocker):
    """The writer thread keeps a connection open; close it before the test database is dropped."""
    yield writer
    writer.stop()


@pytest.fixture(autouse=True)
def fresh_process_state(fake_openai):
    """In-process caches outlive a test's database; start each test without them."""
    api_keys.forget_keys()
    router.forget_catalog()
    breaker.reset()
    rate_limits.reset()
    spend_limits.forget()
    cache.clear()
    caching_store.forget_local_copies()
    semantic.forget_all()
    book.forget()  # a lease a test left idle: its row went with that test's database
    fake_openai.reset()
    yield
    api_keys.forget_keys()
    router.forget_catalog()


@pytest.fixture
def catalog(transactional_db, fake_openai):
    """bootstrap's catalog and plans, with OpenAI pointed at the fake upstream."""
    seed_catalog(read_catalog(), {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake_openai.base_url})
    seed_plans()
    Provider.objects.filter(slug="demo").update(quirks={})  # no pacing between words in tests
    yield
    settle_before_flush()


def settle_before_flush(patience: float = 5.0) -> None:
    """Before the test database is emptied: let requests still in the test server (a stream the
    test stopped reading, a cache hit that settles behind its answer) commit their records, then
    stop the writer so no batch or housekeeping holds row locks against the TRUNCATE (on
    PostgreSQL that deadlocks). The next request starts the writer again."""
    deadline = time.monotonic() + patience
    while unsettled() and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.stop()


def serve_provider_from(slug: str, base_url: str, key: str = API_KEY) -> Provider:
    """Enable a catalog provider and point it at a fake upstream, with the fake's key."""
    provider = Provider.objects.get(slug=slug)
    provider.base_url, provider.enabled = base_url, True
    provider.save()
    credential = Credential(provider=provider, label="test")
    credential.set_secret(key)
    credential.save()
    router.forget_catalog()
    return provider


def make_tenant(slug: str, email: str, plan: str):
    return create_tenant(slug, plan=Plan.objects.get(slug=plan), owner_email=email)


@pytest.fixture
def tenant(catalog):
    return make_tenant("alice-co", "alice@example.com", "pro")


@pytest.fixture
def other_tenant(catalog):
    return make_tenant("charlie-co", "charlie@example.com", "pro")


@pytest.fixture
def api_key(tenant) -> str:
    return issue_api_key(tenant, name="alice laptop", created_by=get_user_model().objects.get(
        email="alice@example.com")).raw


@pytest.fixture
def other_api_key(other_tenant) -> str:
    return issue_api_key(other_tenant, name="charlie laptop").raw


@pytest.fixture
def sdk_for(gateway_url):
    """sdk_for(key): the official SDK pointed at the gateway, closed after the test. No SDK
    retries: tests see every answer."""
    clients = []

    def make(key: str) -> openai.OpenAI:
        clients.append(openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=key, max_retries=0))
        return clients[-1]

    yield make
    for sdk in clients:
        sdk.close()


@pytest.fixture
def client(sdk_for, api_key) -> openai.OpenAI:
    return sdk_for(api_key)


@pytest.fixture
def other_client(sdk_for, other_api_key) -> openai.OpenAI:
    return sdk_for(other_api_key)


@pytest.fixture
def http(gateway_url, api_key):
    """Plain HTTP to /v1 as the tenant (for what the SDK does not cover, such as video files)."""
    with httpx.Client(base_url=f"{gateway_url}/v1", headers={"Authorization": f"Bearer {api_key}"},
                      timeout=20) as client:
        yield client


@pytest.fixture
def other_http(gateway_url, other_api_key):
    with httpx.Client(base_url=f"{gateway_url}/v1", headers={"Authorization": f"Bearer {other_api_key}"},
                      timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def fake_anthropic():
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture
def claude(catalog, fake_anthropic) -> FakeAnthropic:
    """Anthropic enabled, pointed at the fake, with the fake's key as its credential."""
    fake_anthropic.reset()
    serve_provider_from("anthropic", fake_anthropic.base_url, anthropic_upstream.API_KEY)
    return fake_anthropic


@pytest.fixture
def claude_sdk_for(gateway_url):
    """claude_sdk_for(key): the official anthropic SDK pointed at the gateway, no retries."""
    clients = []

    def make(key: str) -> anthropic.Anthropic:
        clients.append(anthropic.Anthropic(base_url=gateway_url, api_key=key, max_retries=0))
        return clients[-1]

    yield make
    for sdk in clients:
        sdk.close()


def signed_in(email: str) -> Client:
    """A browser signed in as ``email`` (an existing user)."""
    browser = Client()
    browser.force_login(get_user_model().objects.get(email=email))
    return browser


def add_member(tenant, email: str, role: str) -> Membership:
    user = get_user_model().objects.create_user(email, email, PASSWORD)
    return Membership.objects.create(tenant=tenant, user=user, role=role)


@pytest.fixture
def stripe_fake(settings, catalog) -> FakeStripe:
    """The fake Stripe API in use, the paid plans carrying their Stripe price ids."""
    for slug, price in PRICES.items():
        Plan.objects.filter(slug=slug).update(stripe_price_id=price)
    return use_fake_stripe(settings)


@pytest.fixture
def on_free(tenant):
    """Alice's tenant starts on Free (its plan as an operator would have set it)."""
    Subscription.objects.filter(tenant=tenant).update(plan=Plan.objects.get(slug="free"))
    return tenant


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    """Poll until ``condition()`` is truthy (settlement runs after the client has its answer)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def outbound_test_hosts(settings):
    """example.com stands for a public host in tests, where nothing resolves: the outbound-fetch
    policy is told to trust it (as an operator lists its own media bucket)."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["example.com"]


@pytest.fixture(autouse=True)
def leases_given_back_at_once(settings):
    """A budget lease goes back as its last request settles, so a test's ledger reads reserved 0
    whenever nothing is in flight (gateway processes it starts inherit the same: see below).
    Tests of the idle lease (the default, BUDGET_LEASE_IDLE_SECONDS) set their own."""
    settings.BUDGET_LEASE_IDLE_SECONDS = 0


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def media_storage(settings, tmp_path):
    """Generated files go to a directory of the test's own, not var/media."""
    settings.STORAGES = {**settings.STORAGES, "media": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path / "media", "base_url": None}}}
    return tmp_path / "media"


# --- the video worker (the fake Veo and Runway are in tests/fake_providers.py) --------------------

@pytest.fixture
def video_worker(catalog, settings):
    """The video worker (the loop of manage.py run_worker) in a thread of this process, polling
    every few hundredths of a second. Yields the Worker."""
    from media.worker import Worker

    settings.VIDEO_POLL_SECONDS = 0.05
    settings.VIDEO_POLL_MAX_SECONDS = 0.2
    settings.VIDEO_WORKER_IDLE_SECONDS = 0.05
    settings.VIDEO_STREAM_POLL_SECONDS = 0.05
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    worker = Worker(name="test-worker")

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(worker.run(stop, grace_seconds=2))
        loop.close()

    thread = threading.Thread(target=run, name="video-worker", daemon=True)
    thread.start()
    yield worker
    loop.call_soon_threadsafe(stop.set)
    thread.join(15)


# --- fal.ai and Replicate (queues polled inside the call; the fakes are in tests/fake_providers.py)

QUICK_POLLS = {"poll_interval": 0.01, "poll_interval_max": 0.05}  # provider quirks: poll every few ms


def adapter_target(provider: str, fake, model: str, *, key: str, total_timeout: float = 10.0, **quirks) -> Target:
    """A Target for calling an adapter straight at ``fake``, polling it every few milliseconds."""
    return Target(provider=provider, upstream_model=model, base_url=fake.base_url, api_key=key,
                  total_timeout=total_timeout, quirks={**QUICK_POLLS, **quirks})


def run_adapter_call(coroutine):
    """Runs an adapter call on a loop of its own, closing the pooled client it opened there."""
    async def main():
        try:
            return await coroutine
        finally:
            await close_client()
    return asyncio.run(main())


def serve_queue_provider(slug: str, fake) -> Provider:
    fake.reset()
    provider = serve_provider_from(slug, fake.base_url, fake.api_key)
    provider.quirks = {**provider.quirks, **QUICK_POLLS}
    provider.save(update_fields=["quirks"])
    router.forget_catalog()
    return provider
