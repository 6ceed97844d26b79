"""The form's choices are kept between pages, and every change to them reaches the next page.

Each process keeps what ``GET /subscribe`` offers and listens for a change
(service/db/kept.py, service/taxonomy/choices.py, migration 0012).  These tests hold it to that:
kept while nothing changes, dropped at a change made anywhere (through the API,
or by another process's SQL), and never kept while nobody listens.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from litestar import Litestar

from service.db.kept import KeptValues
from service.db.pool import Database
from service.runtime import runtime_of
from service.taxonomy.choices import CHANNEL
from tests.subscribers.conftest import Client

pytestmark = pytest.mark.usefixtures("demo")


async def _until(predicate: object, what: str, within: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.02)


async def _kept(client: Client, app: Litestar) -> KeptValues:
    """Draw the form until this process listens and keeps its choices."""
    kept = runtime_of(app.state).kept

    async def keeping() -> bool:
        assert (await client.get("/subscribe")).status_code == 200
        return kept.listening(CHANNEL) and (await client.get("/subscribe")).status_code == 200

    await _until(keeping, "the process listens for changes to the form's choices")
    return kept


async def _rename_unheard(db: Database, slug: str, name: str) -> None:
    """Rename a list the way nothing would announce (triggers off): only a kept page can still show the old name."""
    async with db.transaction() as conn:
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("UPDATE lists SET name = $2 WHERE slug = $1", slug, name)


async def test_a_list_added_through_the_api_is_on_the_next_page(
    client: Client, app: Litestar, admin_headers: dict[str, str]
) -> None:
    await _kept(client, app)
    assert "Board papers" not in (await client.get("/subscribe")).text
    created = await client.post("/v1/lists", json={"slug": "board", "name": "Board papers", "public": True},
                                headers=admin_headers)
    assert created.status_code == 201, created.text

    async def shown() -> bool:
        return "Board papers" in (await client.get("/subscribe")).text

    await _until(shown, "the new list is offered", within=2.0)


async def test_choices_are_kept_until_a_change_is_announced(client: Client, app: Litestar, db: Database) -> None:
    await _kept(client, app)
    await _rename_unheard(db, "training", "Courses and events")
    page = (await client.get("/subscribe")).text
    assert "Courses and events" not in page, "the page was drawn from the database: nothing is kept"
    await db.pool.execute(f"NOTIFY {CHANNEL}")  # what migration 0012's triggers send at commit

    async def renamed() -> bool:
        return "Courses and events" in (await client.get("/subscribe")).text

    await _until(renamed, "the announced change is on the page", within=2.0)


async def test_another_process_changing_a_list_by_sql_reaches_the_page(
    client: Client, app: Litestar, db: Database
) -> None:
    await _kept(client, app)
    await db.pool.execute("UPDATE lists SET public = false WHERE slug = 'training'")

    async def hidden() -> bool:
        return 'value="training"' not in (await client.get("/subscribe")).text

    await _until(hidden, "a list made private is no longer offered", within=2.0)


async def test_nothing_is_kept_while_the_listening_connection_is_lost(
    client: Client, app: Litestar, db: Database
) -> None:
    kept = await _kept(client, app)
    cut = await db.pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
    )
    assert cut == 1, "one connection listens"

    async def lost() -> bool:
        return not kept.listening(CHANNEL)

    await _until(lost, "the process sees its listener gone")
    await _rename_unheard(db, "training", "Courses and events")
    assert "Courses and events" in (await client.get("/subscribe")).text, "read from the database, not kept"
    await _kept(client, app)  # and it listens again
