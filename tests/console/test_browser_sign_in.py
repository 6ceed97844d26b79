"""Signing in to the console in a real headless Chromium against a real `letterbox serve`: by password
(keyboard only, at phone width) and through a real OpenID provider on loopback.

Needs Debian's chromium at /usr/bin/chromium, the playwright package (its own browser download is never
used) and `make node-deps` for the provider; skipped with a reason otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest

from service.settings import Settings
from tests.subscribers.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.console import AXE, PASSWORD, check_page, make_user
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, oidc_provider
from tests.support.processes import Served
from tests.support.smtp import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.skipif(not AXE.exists(), reason="needs axe-core: run `make node-deps`"),
]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def provider(port: int) -> Iterator[OidcProvider]:
    with oidc_provider(f"http://127.0.0.1:{port}/console/oidc/callback") as running:
        yield running


@pytest.fixture
def server(settings: Settings, port: int, provider: OidcProvider) -> Iterator[str]:
    """`letterbox serve --no-worker` with the console's OpenID Connect pointed at the provider."""
    served_settings = msgspec.structs.replace(settings, public_url=f"http://127.0.0.1:{port}")
    served = Served(served_settings, "--no-worker", port=port, oidc_issuer=provider.issuer,
                    oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET)
    try:
        served.wait_ready()
        yield served.base_url
    finally:
        served.stop()


async def test_sign_in_by_password_and_by_provider_in_chromium(server: str, settings: Settings,
                                                               provider: OidcProvider) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright package (pip)")
    await make_user(settings, "comms@example.org", "editor")
    await make_user(settings, "dpo@example.org", "admin", password=None)
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            # A phone. bypass_csp only lets the test inject axe-core; the CSP's refusals are still reported.
            context = await browser.new_context(viewport={"width": 375, "height": 740}, bypass_csp=True)
            page = await context.new_page()
            refused: list[str] = []  # what the Content-Security-Policy blocked: nothing, if the pages obey it
            page.on("console", lambda message: refused.append(message.text) if "Refused" in message.text else None)

            # Signed out, a console page leads to the sign-in form, and back after it; keyboard only.
            await page.goto(f"{server}/console/account")
            assert await page.title() == "Sign in – Letterbox console"
            await check_page(page, "sign-in")
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.textContent") == "Skip to main content"
            await page.keyboard.press("Tab")
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.id") == "email"
            await page.keyboard.type("comms@example.org")
            await page.keyboard.press("Tab")
            await page.keyboard.type("not the password")
            await page.keyboard.press("Enter")
            await page.get_by_role("alert").wait_for()
            assert "The email address or password is not right." in await page.get_by_role("alert").inner_text()
            await check_page(page, "sign-in-refused")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.keyboard.press("Enter")
            await page.get_by_role("heading", name="Your account").wait_for()
            assert page.url == f"{server}/console/account"
            assert "(editor)" in await page.locator("header").inner_text()
            await check_page(page, "account-editor")
            await page.get_by_role("button", name="Sign out").click()
            await page.get_by_role("heading", name="Sign in to the Letterbox console").wait_for()

            # The organisation's account: through the provider and back to where the user was going.
            provider.login_as("dpo@example.org")
            await page.goto(f"{server}/console/account")
            await page.get_by_role("link", name="Sign in with your organisation's account").click()
            await page.get_by_role("heading", name="Your account").wait_for()
            assert "dpo@example.org" in await page.locator("header").inner_text()
            assert page.url == f"{server}/console/account"
            assert await page.get_by_role("link", name="Audit log").is_visible()  # an admin's navigation
            await check_page(page, "account")

            # The admin pages, with a key just made (its token shown once).
            for path, name in (("/console/users", "users"), ("/console/audit", "audit")):
                await page.goto(server + path)
                await check_page(page, name)
            await page.goto(f"{server}/console/api-keys")
            await page.get_by_label("Name").fill("intranet form")
            await page.get_by_label("subscribers:write").check()
            await page.get_by_role("button", name="Create key").click()
            await page.get_by_role("heading", name="Key “intranet form” created").wait_for()
            await check_page(page, "api-keys")
            assert not refused, refused
        finally:
            await browser.close()
