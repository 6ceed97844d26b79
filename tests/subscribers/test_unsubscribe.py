"""Unsubscribe links: the page, the button, and RFC 8058 one-click posts from mail clients."""

from __future__ import annotations

import pytest

from service.db.pool import Database
from service.links import Links
from service.settings import Settings
from service.tokens import TokenSigner
from tests.subscribers.conftest import Client, rows, value
from tests.subscribers.test_form import assert_security_headers
from tests.support.clock import FakeClock

pytestmark = pytest.mark.usefixtures("demo")
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click", "headers": {"content-type": "application/x-www-form-urlencoded"}}


async def confirmed_reader(db: Database, email: str, lists: tuple[str, ...] = ("newsletter", "training")) -> int:
    """An active reader confirmed on ``lists``, written straight into the database."""
    reader: int = await db.pool.fetchval(
        "INSERT INTO subscribers (email, name, status, confirmed_at) VALUES ($1, 'Ann', 'active', now()) RETURNING id",
        email)
    await db.pool.execute(
        "INSERT INTO subscriptions (list_id, subscriber_id, status) "
        "SELECT id, $1, 'confirmed' FROM lists WHERE slug = ANY($2::text[])", reader, list(lists))
    return reader


async def list_id(db: Database, slug: str) -> int:
    """A list's id."""
    found: int = await db.pool.fetchval("SELECT id FROM lists WHERE slug = $1", slug)
    return found


async def an_edition(db: Database) -> int:
    """A finished edition to unsubscribe from."""
    found: int = await db.pool.fetchval(
        "INSERT INTO editions (idempotency_key, request_hash, subject, html, from_addr, list_ids, status) "
        "VALUES ('k1', '\\x00', 'November', '<p>hi</p>', 'news@example.org', '{1}', 'done') RETURNING id")
    return found


def unsubscribe_path(settings: Settings, reader: int, list_: int | None, edition: int | None) -> str:
    """The path of a reader's unsubscribe link, as the worker would put it in a mail."""
    links = Links(settings, TokenSigner(settings.secret_keys))
    return "/unsubscribe/" + links.unsubscribe_token(reader, list_, edition)


async def subscription_statuses(db: Database, reader: int) -> dict[str, str]:
    """slug → status of a reader's subscriptions."""
    found = await rows(db, "SELECT l.slug, s.status FROM subscriptions s JOIN lists l ON l.id = s.list_id "
                           "WHERE s.subscriber_id = $1", reader)
    return {r["slug"]: r["status"] for r in found}


async def test_the_page_shows_a_button_and_changes_nothing(client: Client, db: Database, settings: Settings) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    path = unsubscribe_path(settings, reader, await list_id(db, "newsletter"), None)
    page = await client.get(path)
    assert page.status_code == 200
    assert_security_headers(page.headers, token_page=True)
    assert "<strong>Partnership newsletter</strong>" in page.text and '<form method="post">' in page.text
    assert 'name="scope" value="all"' in page.text, "leaving every list is offered"
    assert (await subscription_statuses(db, reader))["newsletter"] == "confirmed"


async def test_one_click_unsubscribes_from_the_list_at_once_and_repeats_harmlessly(
    client: Client, db: Database, settings: Settings
) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    edition = await an_edition(db)
    path = unsubscribe_path(settings, reader, await list_id(db, "newsletter"), edition)
    client.cookies.clear()
    for _ in range(2):
        response = await client.post(path, **ONE_CLICK)  # type: ignore[arg-type]
        assert response.status_code == 200 and not response.history, "2xx, no redirect"
        assert_security_headers(response.headers, token_page=True)
        assert "You are unsubscribed" in response.text
    assert await subscription_statuses(db, reader) == {"newsletter": "unsubscribed", "training": "confirmed"}
    assert await value(db, "SELECT status FROM subscribers") == "active", "still on another list"
    assert await value(db, "SELECT count(*) FROM edition_unsubscribes WHERE edition_id = $1", edition) == 1
    (consent,) = await rows(db, "SELECT * FROM consents")
    assert (consent["action"], consent["lists"], consent["source"]) == ("unsubscribe", ["newsletter"], "one-click")


async def test_leaving_the_last_list_makes_the_person_unsubscribed(
    client: Client, db: Database, settings: Settings
) -> None:
    reader = await confirmed_reader(db, "ann@example.org", ("newsletter",))
    response = await client.post(unsubscribe_path(settings, reader, await list_id(db, "newsletter"), None))
    assert response.status_code == 200
    assert "You will not receive any more newsletters from us." in response.text
    assert await value(db, "SELECT status FROM subscribers") == "unsubscribed"


async def test_the_page_can_leave_every_list(client: Client, db: Database, settings: Settings) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    path = unsubscribe_path(settings, reader, await list_id(db, "newsletter"), None)
    response = await client.post(path, data={"scope": "all"})
    assert response.status_code == 200
    assert set((await subscription_statuses(db, reader)).values()) == {"unsubscribed"}
    assert await value(db, "SELECT status FROM subscribers") == "unsubscribed"
    (consent,) = await rows(db, "SELECT * FROM consents")
    assert sorted(consent["lists"]) == ["newsletter", "training"] and consent["source"] == "link"


async def test_a_link_without_a_list_leaves_everything(client: Client, db: Database, settings: Settings) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    response = await client.post(unsubscribe_path(settings, reader, None, None), **ONE_CLICK)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert set((await subscription_statuses(db, reader)).values()) == {"unsubscribed"}


@pytest.mark.parametrize(
    "body",
    [
        {"content": b"", "headers": {}},
        {"files": {"List-Unsubscribe": (None, "One-Click")}},
        {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    ],
)
async def test_one_click_works_whatever_body_a_mail_client_sends(
    client: Client, db: Database, settings: Settings, body: dict[str, object]
) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    response = await client.post(unsubscribe_path(settings, reader, await list_id(db, "newsletter"), None), **body)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert (await subscription_statuses(db, reader))["newsletter"] == "unsubscribed"


async def test_links_never_expire_but_forgeries_fail(
    client: Client, db: Database, settings: Settings, clock: FakeClock
) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    path = unsubscribe_path(settings, reader, await list_id(db, "newsletter"), None)
    for bad in (path[:-3] + "xyz", "/unsubscribe/1--.abc", "/unsubscribe/x"):
        for method in ("GET", "POST"):
            response = await client.request(method, bad, **ONE_CLICK)  # type: ignore[arg-type]
            assert response.status_code == 400 and "This link does not work" in response.text
    assert (await subscription_statuses(db, reader))["newsletter"] == "confirmed"
    clock.advance(400 * 24 * 3600)
    assert (await client.post(path, **ONE_CLICK)).status_code == 200  # type: ignore[arg-type]
    assert (await subscription_statuses(db, reader))["newsletter"] == "unsubscribed"


async def test_an_erased_persons_link_is_harmless(client: Client, db: Database, settings: Settings) -> None:
    path = unsubscribe_path(settings, 4242, 1, None)
    assert (await client.get(path)).status_code == 200
    response = await client.post(path, **ONE_CLICK)  # type: ignore[arg-type]
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert "preferences" not in response.text
