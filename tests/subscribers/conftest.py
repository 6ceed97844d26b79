"""Helpers for the subscriber tests: the demo taxonomy, the form's hidden fields, mail links, SQL."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.db.pool import Database, open_database
from service.settings import Settings
from service.subscribers.demo import load_demo
from tests.support.smtp import Received

Client = AsyncTestClient[Litestar]
FORM = {"content-type": "application/x-www-form-urlencoded"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_LINK = re.compile(r"https://news\.example\.org(/(?:confirm|unsubscribe|preferences)/[A-Za-z0-9._-]+)")


@pytest.fixture
async def other(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, for a transaction that runs beside another."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def db(client: Client, settings: Settings) -> AsyncIterator[Database]:
    """A pool of the test's own on the test's database.

    The app's pool lives in the test client's event loop (another thread), so tests
    reach the database through a pool of their own.
    """
    database = await open_database(settings.database_url or "", pool_size=2, run_migrations=False)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def demo(db: Database) -> None:
    """The sample partnership taxonomy (newsletter, training, practice-reviews lists, …)."""
    await load_demo(db)


async def rows(db: Database, query: str, *args: Any) -> list[asyncpg.Record]:
    """Run SQL against the test's database."""
    result: list[asyncpg.Record] = await db.pool.fetch(query, *args)
    return result


async def value(db: Database, query: str, *args: Any) -> Any:
    """One value from SQL against the test's database."""
    return await db.pool.fetchval(query, *args)


def csrf_of(page: str) -> str:
    """The CSRF token of a rendered form."""
    found = _CSRF.search(page)
    assert found, "the page has no CSRF field"
    return html.unescape(found[1])


async def subscribe(client: Client, email: str, lists: Sequence[str] = ("newsletter",), *,
                    headers: dict[str, str] | None = None, **fields: str) -> httpx.Response:
    """Fill in and post the public form as a browser would."""
    form = await client.get("/subscribe")
    data: dict[str, Any] = {"csrf": csrf_of(form.text), "email": email, "name": "", "agency": "", "role": "",
                            "website": "", "lists": list(lists)}
    data.update(fields)
    return await client.post("/subscribe", data=data, headers=headers)


def link_in(message: Received, kind: str) -> str:
    """The path of the first ``kind`` link (confirm, unsubscribe, preferences) in a mail's text."""
    text = message.parsed().get_body(("plain",))
    assert text is not None
    for path in _LINK.findall(text.get_content()):
        if path.startswith(f"/{kind}/"):
            return str(path)
    raise AssertionError(f"no {kind} link in the mail")

