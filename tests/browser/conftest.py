"""Browser tests: Playwright's async API driving Debian's Chromium against the real gateway
(tests/conftest.py gateway_url: uvicorn serving HTTP and WebSockets in this process).

Playwright never downloads a browser here: it launches /usr/bin/chromium (tests/ensure_chromium.sh
installs it; ``make test`` runs that first). The async API, because Playwright's sync API keeps
an event loop running on the test's thread, where Django then refuses plain ORM calls.

Each page a test visits is saved as a screenshot under tests/browser/screenshots/ (git-ignored).
"""

import asyncio
import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).parent / "screenshots"
EXPECTED_BROWSER_ERRORS = re.compile(r"Failed to load resource|WebSocket connection to .* failed")

# The gateway serves the dashboard's scripts and styles from the apps' folders, as runserver does:
# tests run without collectstatic. Set while collecting, before any test builds the app.
settings.SERVESTATIC_USE_FINDERS = True


class Visit:
    """A browser context (one signed-in person) with its page, its screenshots, and every script
    error the page logged (a test fails on any)."""

    def __init__(self, page: Page, base_url: str, prefix: str):
        self.page = page
        self.base_url = base_url
        self.prefix = prefix
        self.shots = 0
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on("console", self.on_console)

    def on_console(self, message) -> None:
        # A page answered 404 on purpose, or a socket refused on purpose, is logged by the
        # browser itself; the tests assert those answers directly.
        if message.type == "error" and not EXPECTED_BROWSER_ERRORS.match(message.text):
            self.errors.append(f"{self.page.url}: {message.text}")

    async def goto(self, path: str):
        return await self.page.goto(self.base_url + path)

    async def screenshot(self, name: str) -> None:
        self.shots += 1
        SCREENSHOTS.mkdir(exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        await self.page.screenshot(path=SCREENSHOTS / f"{self.prefix}-{self.shots:02d}-{slug}.png", full_page=True)


@pytest.fixture
def browse(request, gateway_url, catalog):
    """browse(scenario): run ``async scenario(open_visit)`` with a fresh Chromium, where
    ``await open_visit(name)`` gives a new Visit (its own cookies) on the gateway."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run tests/ensure_chromium.sh (make test does).")
    test_name = request.node.name

    def run(scenario) -> None:
        async def main() -> None:
            async with async_playwright() as playwright:
                browser: Browser = await playwright.chromium.launch(executable_path=str(CHROMIUM))
                visits: list[Visit] = []

                async def open_visit(name: str) -> Visit:
                    context = await browser.new_context(viewport={"width": 1280, "height": 900},
                                                        accept_downloads=True)
                    visit = Visit(await context.new_page(), gateway_url, f"{test_name}-{name}")
                    visits.append(visit)
                    return visit

                try:
                    await scenario(open_visit)
                finally:
                    await browser.close()
                errors = [error for visit in visits for error in visit.errors]
                assert not errors, f"the pages logged script errors: {errors}"

        asyncio.run(main())

    return run
