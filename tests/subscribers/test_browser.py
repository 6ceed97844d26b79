"""The form and the confirmation page in a real headless Chromium, against a real `letterbox serve`.

Needs Debian's ``chromium`` package at /usr/bin/chromium and the ``playwright`` Python
package (whose own browser download is never used); skipped with a reason otherwise.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.db.pool import Database
from service.settings import Settings
from tests.conftest import SECRET
from tests.subscribers.conftest import value
from tests.support.smtp import SmtpSink, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
    pytest.mark.usefixtures("demo"),
]


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """`letterbox serve` (API and worker) on a free port with the test's database and SMTP sink."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env |= {
        "LETTERBOX_DATABASE_URL": settings.database_url or "",
        "LETTERBOX_SMTP_URL": settings.smtp_url or "",
        "LETTERBOX_SECRET_KEYS": SECRET,
        "LETTERBOX_PUBLIC_URL": base,
        "LETTERBOX_FROM": settings.from_addr,
        "LETTERBOX_VAR_DIR": str(tmp_path / "var"),
        "LETTERBOX_LOG_FORMAT": "json",
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server never became ready"
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=1) as response:  # noqa: S310 - our own server
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def test_subscribe_and_confirm_in_chromium(server: str, db: Database, smtp_sink: SmtpSink) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright package (pip)")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 375, "height": 740})  # a phone
            refused: list[str] = []  # what the Content-Security-Policy blocked: nothing, if the pages obey it
            page.on("console", lambda message: refused.append(message.text) if "Refused" in message.text else None)

            await page.goto(f"{server}/subscribe")
            assert await page.title() == "Subscribe – Partnership News"
            box = await page.locator("#website").bounding_box()
            assert box is None or box["x"] + box["width"] <= 0, "the honeypot is out of people's sight"

            # Sent empty, the form explains itself and keeps focusable links to the fields.
            await page.get_by_role("button", name="Subscribe").click()
            summary = page.get_by_role("alert")
            assert "There is a problem" in await summary.inner_text()
            await page.get_by_role("link", name=re.compile("Enter an e-mail address")).click()
            assert await page.evaluate("document.activeElement.id") == "email"

            await page.get_by_label("E-mail address").fill("Pat.Reader@example.org")
            await page.get_by_label("Name").fill("Pat <b>Reader</b>")
            await page.get_by_label("Organisation").select_option(label="Early years")
            await page.get_by_label("Role").select_option(label="Designated safeguarding lead")
            await page.get_by_label("Partnership newsletter").check()
            await page.get_by_label("Training and events").check()
            await page.keyboard.press("Tab")
            await page.get_by_role("button", name="Subscribe").click()
            await page.get_by_role("heading", name="Check your inbox").wait_for()

            (received,) = await smtp_sink.wait_for(1, within=30)
            text = received.parsed().get_body(("plain",)).get_content()  # type: ignore[union-attr]
            (link,) = re.findall(re.escape(server) + r"/confirm/[A-Za-z0-9._-]+", text)
            await page.goto(link)
            assert await value(db, "SELECT status FROM subscribers") == "pending", "opening the link changes nothing"
            await page.get_by_role("button", name="Confirm my subscription").click()
            await page.get_by_role("heading", name="You are subscribed").wait_for()

            person = (await db.pool.fetch("SELECT * FROM subscribers"))[0]
            assert (person["email"], person["name"], person["agency"], person["role"], person["status"]) == (
                "Pat.Reader@example.org", "Pat <b>Reader</b>", "early-years", "designated-safeguarding-lead", "active")
            assert person["confirmed_at"] is not None
            statuses = {r["status"] for r in await db.pool.fetch("SELECT status FROM subscriptions")}
            assert statuses == {"confirmed"}
            consent = await db.pool.fetchrow("SELECT * FROM consents WHERE action = 'confirm'")
            assert consent is not None and "Chrome" in consent["user_agent"] and str(consent["ip"]) == "127.0.0.1"
            assert refused == [], f"the browser refused something under the CSP: {refused}"
        finally:
            await browser.close()
