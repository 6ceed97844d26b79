"""The answers to a one-click unsubscribe and a confirmation: drawn once per outcome, each with the
reader's own preferences link; and the one-click body read as the form it is."""

from __future__ import annotations

import html
import re

import pytest

from service.db.pool import Database
from service.settings import Settings
from service.tokens import Purpose, TokenSigner
from tests.subscribers.conftest import FORM, Client, rows
from tests.subscribers.test_form import assert_security_headers
from tests.subscribers.test_unsubscribe import confirmed_reader, list_id, unsubscribe_path

pytestmark = pytest.mark.usefixtures("demo")
ONE_CLICK = b"List-Unsubscribe=One-Click"
_PREFERENCES = re.compile(r'href="https://news\.example\.org/preferences/([^"]+)"')


def preferences_of(settings: Settings, page: str) -> int | None:
    """Whose preferences the page's one preferences link opens."""
    (token,) = _PREFERENCES.findall(page)
    (subscriber_id,) = TokenSigner(settings.secret_keys).verify(Purpose.PREFERENCES, html.unescape(token))
    return subscriber_id


async def _sources(db: Database) -> list[str]:
    return [r["source"] for r in await rows(db, "SELECT source FROM consents ORDER BY id")]


async def test_each_reader_leaving_gets_their_own_preferences_link(
    client: Client, db: Database, settings: Settings
) -> None:
    newsletter = await list_id(db, "newsletter")
    ann = await confirmed_reader(db, "ann@example.org")
    bob = await confirmed_reader(db, "bob@example.org")
    cat = await confirmed_reader(db, "cat@example.org", ("newsletter",))
    pages = {}
    for reader in (ann, bob, cat):
        response = await client.post(unsubscribe_path(settings, reader, newsletter, None), content=ONE_CLICK,
                                     headers=FORM)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assert_security_headers(response.headers, token_page=True)
        assert preferences_of(settings, response.text) == reader
        pages[reader] = response.text
    for reader in (ann, bob):
        assert "You still receive:" in pages[reader] and "<li>Training and events</li>" in pages[reader]
        assert "You will not receive that list any more." in pages[reader]
    assert "You will not receive any more newsletters from us." in pages[cat]
    assert "You still receive" not in pages[cat]


async def test_each_reader_confirming_gets_their_own_preferences_link(
    client: Client, db: Database, settings: Settings
) -> None:
    signer = TokenSigner(settings.secret_keys)
    for email in ("dan@example.org", "eve@example.org"):
        reader: int = await db.pool.fetchval(
            "INSERT INTO subscribers (email, name) VALUES ($1, 'Reader') RETURNING id", email)
        await db.pool.execute("INSERT INTO subscriptions (list_id, subscriber_id, status) VALUES ($1, $2, 'pending')",
                              await list_id(db, "newsletter"), reader)
        response = await client.post(f"/confirm/{signer.sign(Purpose.CONFIRM, reader)}")
        assert response.status_code == 200 and "You are subscribed" in response.text
        assert_security_headers(response.headers, token_page=True)
        assert preferences_of(settings, response.text) == reader


async def test_the_one_click_body_counts_as_one_click_only_when_posted_as_a_form(
    client: Client, db: Database, settings: Settings
) -> None:
    newsletter = await list_id(db, "newsletter")
    as_text = await confirmed_reader(db, "ann@example.org")
    with_scope = await confirmed_reader(db, "bob@example.org")
    response = await client.post(unsubscribe_path(settings, as_text, newsletter, None), content=ONE_CLICK,
                                 headers={"content-type": "text/plain"})
    assert response.status_code == 200
    response = await client.post(unsubscribe_path(settings, with_scope, newsletter, None),
                                 content=b"List-Unsubscribe=One-Click&scope=all",
                                 headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"})
    assert response.status_code == 200
    assert await _sources(db) == ["link", "one-click"], "text/plain is not a form; the form's fields are read"
    assert [r["lists"] for r in await rows(db, "SELECT lists FROM consents ORDER BY id")] == [
        ["newsletter"], ["newsletter", "training"]]
