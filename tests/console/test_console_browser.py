"""The console's pages in a real headless Chromium against a real `letterbox serve` whose worker sends
into the test SMTP sink: watch an edition progress, pause and resume it with the keyboard, find a
reader and erase them (admin) and be refused (viewer); every page is scanned with axe-core (no
serious or critical violation), fits a 375 px phone without sideways scrolling, and is saved as a
screenshot under var/test-artifacts/console/.

Needs Debian's chromium at /usr/bin/chromium, the playwright package and `make node-deps` (axe-core);
skipped with a reason otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from service.settings import Settings
from tests.conftest import BOOTSTRAP_KEY
from tests.subscribers.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.console import ARTIFACTS, AXE, PASSWORD, check_page, make_user
from tests.support.processes import Served
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink, free_port

READERS = 12

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.skipif(not AXE.exists(), reason="needs axe-core: run `make node-deps`"),
]


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """`letterbox serve` with its worker, sending one copy a second so that progress can be watched."""
    port = free_port()
    served_settings = msgspec.structs.replace(settings, public_url=f"http://127.0.0.1:{port}")
    served = Served(served_settings, port=port, bootstrap_api_key=BOOTSTRAP_KEY, send_rate=1)
    try:
        served.wait_ready()
        yield served.base_url
    finally:
        served.stop()


async def post_edition(server: str) -> int:
    """Queue an edition to every reader through /v1, as a renderer would."""
    async with httpx.AsyncClient(base_url=server) as api:
        response = await api.post(
            "/v1/editions", headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}", "Idempotency-Key": "browser"},
            json={"subject": "Partnership news, June", "lists": ["news"],
                  "html": '<html lang="en"><body><h1>June</h1><p>Hello {{name}}.</p>'
                          '<p><a href="{{unsubscribe_url}}">Unsubscribe</a></p></body></html>'},
        )
    assert response.status_code == 202, response.text
    edition_id: int = response.json()["id"]
    return edition_id


async def sign_in(page: Any, server: str, email: str) -> None:
    await page.goto(f"{server}/console/sign-in")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await page.get_by_role("heading", name="Dashboard").wait_for()


async def tab_to(page: Any, text: str, limit: int = 80) -> None:
    """Press Tab until the focused element's text is ``text`` (keyboard only)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if (await page.evaluate("document.activeElement.textContent.trim()")) == text:
            return
    raise AssertionError(f"{text!r} cannot be reached with Tab")


async def test_console_pages_in_chromium(server: str, settings: Settings, smtp_sink: SmtpSink) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright package (pip)")
    emails = await seed_readers(settings.database_url or "", READERS)
    for role in ("viewer", "editor", "admin"):
        await make_user(settings, f"{role}@example.org", role)
    edition_id = await post_edition(server)
    print(f"\nconsole screenshots: {ARTIFACTS}")

    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            # bypass_csp only lets the test inject axe-core; the pages' own CSP is checked below by
            # listening for what Chromium refused.
            editor = await browser.new_context(viewport={"width": 375, "height": 740}, bypass_csp=True)
            page = await editor.new_page()
            await sign_in(page, server, "editor@example.org")

            # The dashboard's script swaps in fresh progress while the worker sends.
            in_flight = page.locator("#in-flight")
            await page.wait_for_function(
                f"() => /[1-9] of {READERS} copies done/.test(document.querySelector('#in-flight').textContent)",
                timeout=60_000)
            assert "Partnership news, June" in await in_flight.inner_text()

            # Pause from the edition page with the keyboard alone.
            await page.goto(f"{server}/console/editions/{edition_id}")
            await tab_to(page, "Pause sending")
            await page.keyboard.press("Enter")
            await page.get_by_role("button", name="Resume sending").wait_for()
            assert "PAUSED" in (await page.locator("#edition-counts").inner_text()).upper()
            await check_page(page, "edition-paused")
            await page.goto(f"{server}/console/")
            await check_page(page, "dashboard")

            # Resume, and watch the edition page's script count the rest in.
            await page.goto(f"{server}/console/editions/{edition_id}")
            await tab_to(page, "Resume sending")
            await page.keyboard.press("Enter")
            await page.wait_for_function(
                f"() => /{READERS} of {READERS} copies done/.test(document.querySelector('#edition-counts').textContent)"
                " && !document.querySelector('#edition-counts').hasAttribute('data-refresh')",
                timeout=90_000)
            await page.reload()
            assert "done" in (await page.locator("#edition-counts").inner_text()).lower()
            # The preview shows the posted HTML inside its sandbox.
            await page.frame_locator("iframe.preview").get_by_role("heading", name="June").wait_for()
            await check_page(page, "edition")
            assert len(await smtp_sink.wait_for(READERS, within=30)) == READERS

            for path, name in (("/console/editions", "editions"), ("/console/lists", "lists"),
                               ("/console/suppressions", "suppressions"), ("/console/bounces", "bounces"),
                               ("/console/subscribers", "readers")):
                await page.goto(server + path)
                await check_page(page, name)

            # A viewer finds the reader but is refused the erasure.
            viewer = await browser.new_context(viewport={"width": 375, "height": 740}, bypass_csp=True)
            viewing = await viewer.new_page()
            await sign_in(viewing, server, "viewer@example.org")
            await viewing.goto(f"{server}/console/subscribers")
            await viewing.get_by_label("Address or name starts with").fill(emails[0].split("@")[0])
            await viewing.keyboard.press("Enter")
            await viewing.get_by_role("link", name=emails[0]).click()
            assert await viewing.get_by_role("link", name="Erase this reader").count() == 0
            reader_url = viewing.url
            refused = await viewing.goto(reader_url + "/erase")
            assert refused is not None and refused.status == 403
            assert "This needs the admin role" in await viewing.content()

            # An admin finds the same reader and erases them after the confirmation page.
            admin = await browser.new_context(viewport={"width": 375, "height": 740}, bypass_csp=True)
            erasing = await admin.new_page()
            blocked: list[str] = []
            erasing.on("console", lambda m: blocked.append(m.text) if "Refused" in m.text else None)
            await sign_in(erasing, server, "admin@example.org")
            await erasing.goto(reader_url)
            await check_page(erasing, "reader")
            await erasing.get_by_role("link", name="Erase this reader").click()
            await erasing.get_by_role("heading", name=re.compile("^Erase ")).wait_for()
            await check_page(erasing, "erase-confirmation")
            await erasing.get_by_role("button", name=f"Erase {emails[0]}").click()
            await erasing.get_by_role("heading", name="Reader erased").wait_for()
            gone = await erasing.goto(reader_url)
            assert gone is not None and gone.status == 404

            # The same pages at desktop width.
            await erasing.set_viewport_size({"width": 1280, "height": 900})
            for path, name in (("/console/", "dashboard-desktop"), (f"/console/editions/{edition_id}", "edition-desktop")):
                await erasing.goto(server + path)
                await check_page(erasing, name)
            assert blocked == [], f"the browser refused something under the CSP: {blocked}"
        finally:
            await browser.close()
