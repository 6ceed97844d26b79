"""View in browser: ``{{view_url}}`` in a sent copy leads to that reader's own copy as a page."""

from __future__ import annotations

import asyncio
import html
import re
import time

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.links import Links
from service.settings import Settings
from service.tokens import Purpose, TokenSigner
from tests.editions.test_posting import edition
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink
from tests.support.worker import running_worker

# The delivery worker end to end against a real SMTP server: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

Client = AsyncTestClient[Litestar]
HTML = ('<html lang="en"><body><p>Dear {{name}},</p><p><img src="https://cdn.example.org/a.png" alt="Map"></p>'
        '<p><a href="{{view_url}}">View in browser</a> <a href="{{unsubscribe_url}}">Leave</a> '
        '<a href="{{preferences_url}}">Choices</a> {{ unknown }}</p></body></html>')
_VIEW = re.compile(r'href="https://news\.example\.org(/view/[^"]+)"')


async def _sent_view_paths(client: Client, app: Litestar, headers: dict[str, str], settings: Settings,
                           smtp_sink: SmtpSink) -> tuple[int, dict[str, str]]:
    """Send an edition to two readers; return its id and each reader's view path from their copy."""
    await seed_readers(settings.database_url or "", 2)
    posted = await client.post("/v1/editions", json=edition(html=HTML), headers={**headers, "Idempotency-Key": "v"})
    assert posted.status_code == 202, posted.text
    async with running_worker(app):
        received = await smtp_sink.wait_for(2)
        deadline = time.monotonic() + 20
        while (await client.get(f"/v1/editions/{posted.json()['id']}", headers=headers)).json()["status"] != "done":
            assert time.monotonic() < deadline, "the edition never finished"
            await asyncio.sleep(0.05)
    paths = {}
    for item in received:
        part = item.parsed().get_body(("html",))
        assert part is not None
        found = _VIEW.search(part.get_content())
        assert found is not None, "the copy links to its web view"
        paths[item.rcpt_tos[0]] = html.unescape(found[1])
    return int(posted.json()["id"]), paths


async def test_a_readers_view_link_shows_their_own_copy_and_nothing_more(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    edition_id, paths = await _sent_view_paths(client, app, admin_headers, settings, smtp_sink)
    assert paths["reader1@example.org"] != paths["reader2@example.org"]
    page = await client.get(paths["reader1@example.org"])
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "img-src https:" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    body = page.text
    assert "Dear Reader 1," in body
    assert "{{" not in body.replace("{{ unknown }}", ""), "every known placeholder is filled"
    # The page is the edition and nothing else: no pixel, no rewritten links.
    assert body.count("<img") == 1
    links = re.findall(r'href="([^"]+)"', body)
    assert links[0] == f"https://news.example.org{paths['reader1@example.org']}"
    assert links[1].startswith("https://news.example.org/unsubscribe/")
    assert links[2].startswith("https://news.example.org/preferences/")
    signer = TokenSigner(settings.secret_keys)
    subscriber_id, list_id, unsubscribe_edition = signer.verify(Purpose.UNSUBSCRIBE, links[1].rsplit("/", 1)[1])
    assert unsubscribe_edition == edition_id and list_id is not None
    (viewer, viewed) = signer.verify(Purpose.VIEW, paths["reader1@example.org"].rsplit("/", 1)[1])
    assert (viewer, viewed) == (subscriber_id, edition_id)


async def test_a_forged_or_foreign_link_gets_a_page_not_a_copy(
    client: Client, settings: Settings
) -> None:
    await seed_readers(settings.database_url or "", 1)
    links = Links(settings, TokenSigner(settings.secret_keys))
    forged = await client.get("/view/1-1.notasignature")
    assert forged.status_code == 400
    assert "This link does not work" in forged.text
    # A genuine unsubscribe token is no view token.
    wrong_purpose = await client.get(f"/view/{links.unsubscribe_token(1, None, 1)}")
    assert wrong_purpose.status_code == 400
    # A genuine view link to an edition that never existed: gone.
    missing = await client.get(links.view_url(999, 1).removeprefix("https://news.example.org"))
    assert missing.status_code == 410


async def test_an_erased_reader_or_a_deleted_edition_gets_a_410_page(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    edition_id, paths = await _sent_view_paths(client, app, admin_headers, settings, smtp_sink)
    conn = await asyncpg.connect(settings.database_url)
    try:
        reader2 = await conn.fetchval("SELECT id FROM subscribers WHERE email = 'reader2@example.org'")
        erased = await client.delete(f"/v1/subscribers/{reader2}", headers=admin_headers)
        assert erased.status_code == 204
        gone = await client.get(paths["reader2@example.org"])
        assert gone.status_code == 410
        assert "Dear Reader" not in gone.text and "no longer hold any details" in gone.text

        assert (await client.get(paths["reader1@example.org"])).status_code == 200
        await conn.execute("DELETE FROM deliveries WHERE edition_id = $1", edition_id)
        await conn.execute("DELETE FROM editions WHERE id = $1", edition_id)
        deleted = await client.get(paths["reader1@example.org"])
        assert deleted.status_code == 410
        assert "no longer available" in deleted.text
    finally:
        await conn.close()


async def test_a_genuine_link_for_someone_never_sent_the_edition_is_a_404_page(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    edition_id, _ = await _sent_view_paths(client, app, admin_headers, settings, smtp_sink)
    conn = await asyncpg.connect(settings.database_url)
    try:
        newcomer = await conn.fetchval("INSERT INTO subscribers (email, status) VALUES ('new@example.org', 'active') "
                                       "RETURNING id")
    finally:
        await conn.close()
    links = Links(settings, TokenSigner(settings.secret_keys))
    response = await client.get(links.view_url(edition_id, newcomer).removeprefix("https://news.example.org"))
    assert response.status_code == 404
    assert "no copy of this edition" in response.text
