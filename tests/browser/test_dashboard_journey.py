"""A tenant's first hour, in a real browser: sign up, create a key, call the API with it, watch the
call arrive in the usage charts and table, export it, revoke the key, stream in the playground;
then another tenant's user finds none of it."""

import csv
import io
import re

import openai
from django.core import mail
from playwright.async_api import expect

PASSWORD = "a long enough passphrase 42"


async def sign_up(visit, *, email: str, organization: str) -> str:
    """Sign up through the form and the link mailed to confirm it; returns the new tenant's slug
    (from the page it lands on)."""
    await visit.goto("/accounts/signup/")
    await visit.screenshot("signup")
    page = visit.page
    await page.fill("#id_email", email)
    await page.fill("#id_organization", organization)
    await page.fill("#id_password1", PASSWORD)
    await page.fill("#id_password2", PASSWORD)
    await page.click("#signup")
    await expect(page.locator("#signup-sent")).to_be_visible()
    [message] = [message for message in mail.outbox if message.to == [email]]
    await page.goto(re.search(r"http://\S+/accounts/signup/confirm/\S+/", message.body).group(0))
    await visit.screenshot("signup confirm")
    await page.click("#signup-confirm")
    await page.wait_for_url(re.compile(r"/t/[a-z0-9-]+/usage/$"))
    return re.search(r"/t/([a-z0-9-]+)/usage/", page.url).group(1)


async def create_key(visit, slug: str, name: str) -> str:
    await visit.goto(f"/t/{slug}/keys/")
    await visit.page.fill("#id_name", name)
    await visit.page.click("#create-key")
    key = (await visit.page.text_content("#new-key")).strip()
    await visit.screenshot("key created")
    return key


async def call_api(base_url: str, key: str, text: str) -> str:
    """A chat completion with the official SDK; returns the gateway's request id."""
    async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="demo/echo", messages=[{"role": "user", "content": text}])
        assert raw.parse().choices[0].message.content == text
        return raw.headers["x-tollgate-request-id"]


async def watch_usage_live(alice, slug: str, key: str, gateway_url: str) -> str:
    """The usage page is live: the call shows up in the table and the charts without a reload;
    returns its request id."""
    page = alice.page
    await alice.goto(f"/t/{slug}/usage/")
    await expect(page.get_by_test_id("live-status")).to_have_text("live")
    request_id = await call_api(gateway_url, key, "hello from the sdk")
    row = page.locator(f'#usage-rows tr[data-request-id="{request_id}"]')
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("demo/echo")
    await expect(row).to_contain_text("laptop")
    await expect(page.locator("#usage-rows .empty-row")).to_be_hidden()
    await expect(page.get_by_test_id("month-requests")).to_have_text("1")
    await expect(page.locator("#chart-requests")).to_contain_text("demo/echo")  # its direct label
    today_bar = page.locator("#chart-requests rect title", has_text="· demo/echo: 1 request")
    await expect(today_bar).to_have_count(1)
    await alice.screenshot("usage live")

    await page.click('[data-testid="split-key"]')
    await expect(page.locator("#chart-tokens rect title", has_text="· laptop: 8 tokens")).to_have_count(1)
    await alice.screenshot("usage by key")
    return request_id


async def filter_and_export(alice, slug: str, request_id: str) -> None:
    """The request log, filtered, and the same filter as CSV."""
    page = alice.page
    await alice.goto(f"/t/{slug}/usage/records/")
    await page.select_option("#id_outcome", "ok")
    await page.select_option("#id_model", "demo/echo")
    await page.click("#apply-filters")
    await expect(page.locator(f'tr[data-request-id="{request_id}"]')).to_be_visible()
    await alice.screenshot("records filtered")
    async with page.expect_download() as download_info:
        await page.click("#export-csv")
    download = await download_info.value
    exported = list(csv.DictReader(io.StringIO((await download.path()).read_text(encoding="utf-8"))))
    assert [(row["request_id"], row["api_key"], row["outcome"]) for row in exported] == [
        (request_id, "laptop", "ok")]
    await page.select_option("#id_outcome", "error")
    await page.click("#apply-filters")
    await expect(page.locator("#usage-rows .empty-row")).to_contain_text("No requests match these filters")


async def revoke_key(alice, slug: str, key: str, gateway_url: str) -> None:
    """Revoked: the next call fails."""
    page = alice.page
    await alice.goto(f"/t/{slug}/keys/")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click('button[aria-label="Revoke laptop"]')
    await expect(page.get_by_test_id("key-laptop").get_by_test_id("status")).to_have_text("revoked")
    await alice.screenshot("key revoked")
    try:
        await call_api(gateway_url, key, "after revoking")
    except openai.AuthenticationError as refused:
        assert "has been revoked" in str(refused)
    else:
        raise AssertionError("a revoked key still worked")


async def use_the_playground(alice, slug: str) -> None:
    """The playground streams through the same request path and shows what it cost."""
    page = alice.page
    await alice.goto(f"/t/{slug}/playground/")
    await expect(page.get_by_test_id("playground-status")).to_have_text("Ready.")
    assert await page.locator("#playground-model option").all_text_contents() == ["demo/echo"]
    await page.fill("#playground-prompt", "streamed in the playground")
    await page.click("#playground-run")
    await expect(page.get_by_test_id("playground-output")).to_have_text("streamed in the playground")
    await expect(page.get_by_test_id("playground-cost")).to_contain_text("4 tokens in, 4 out: cost $0.000")
    await alice.screenshot("playground answered")
    # A model off the plan (a stale page) is refused in words.
    await page.evaluate("""() => {
        const select = document.getElementById("playground-model");
        select.add(new Option("openai/gpt-4o-mini", "openai/gpt-4o-mini"));
        select.value = "openai/gpt-4o-mini";
    }""")
    await page.click("#playground-run")
    await expect(page.locator("#playground-error")).to_contain_text(
        "model 'openai/gpt-4o-mini' is not on plan Free")
    await alice.screenshot("playground refused")

    await alice.goto(f"/t/{slug}/usage/records/?key=none")
    await expect(page.locator("#usage-rows tr[data-request-id]")).to_have_count(1)
    await expect(page.locator("#usage-rows")).to_contain_text("playground")


async def find_none_of_it(open_visit, slug: str, request_id: str) -> None:
    """Another tenant's user finds none of it."""
    bob = await open_visit("bob")
    bob_slug = await sign_up(bob, email="bob@example.com", organization="Bob Works")
    await bob.page.click("#logout")
    await bob.goto("/accounts/login/")
    await bob.page.fill("#id_username", "bob@example.com")
    await bob.page.fill("#id_password", PASSWORD)
    await bob.page.click("#login")
    await bob.page.wait_for_url(f"**/t/{bob_slug}/usage/")
    await expect(bob.page.locator("#usage-rows .empty-row")).to_be_visible()
    assert request_id not in await bob.page.content()
    await bob.screenshot("own usage")
    for path in ("usage/", "usage/records/", "usage/export.csv", "playground/", "keys/"):
        response = await bob.goto(f"/t/{slug}/{path}")
        assert response.status == 404, path
    await bob.screenshot("other tenant is not found")
    await bob.goto(f"/t/{bob_slug}/usage/records/?request_id={request_id}")
    await expect(bob.page.locator("#usage-rows tr[data-request-id]")).to_have_count(0)
    socket_opened = await bob.page.evaluate("""(path) => new Promise((resolve) => {
        const socket = new WebSocket("ws://" + location.host + path);
        socket.onopen = () => resolve(true);
        socket.onclose = () => resolve(false);
    })""", f"/ws/tenants/{slug}/usage/")
    assert socket_opened is False


def test_tenant_journey_and_an_outsider(browse, gateway_url):
    async def journey(open_visit):
        alice = await open_visit("alice")
        page = alice.page
        slug = await sign_up(alice, email="alice@example.com", organization="Alice Labs")
        await expect(page.locator("#usage-rows .empty-row")).to_be_visible()
        await alice.screenshot("usage empty")

        key = await create_key(alice, slug, "laptop")
        request_id = await watch_usage_live(alice, slug, key, gateway_url)
        await filter_and_export(alice, slug, request_id)
        await revoke_key(alice, slug, key, gateway_url)
        await use_the_playground(alice, slug)
        await find_none_of_it(open_visit, slug, request_id)

    browse(journey)
