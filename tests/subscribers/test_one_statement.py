"""A reader's own changes are one statement each (round trips were most of their cost), and keep
their guarantees when two of them meet: one lock per person, a fresh look after waiting for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, cast

import pytest
from asyncpg.connection import LoggedQuery

from service.db.batches import Groups
from service.db.pool import Database, open_database
from service.settings import Settings
from service.subscribers import lifecycle, signups
from service.taxonomy.terms import ListRef
from tests.subscribers.conftest import rows, value

pytestmark = pytest.mark.usefixtures("demo")
ACTOR = lifecycle.Actor.of("one-click", "192.0.2.9", "mail client")


@pytest.fixture
async def one_connection(settings: Settings) -> AsyncIterator[tuple[Database, list[str]]]:
    """A database handle whose pool holds one connection, and every statement that connection runs."""
    database = await open_database(settings.database_url or "", pool_size=1, run_migrations=False)
    statements: list[str] = []
    async with database.pool.acquire() as conn:
        # asyncpg looks up an array parameter's type once per connection, by statements of its own.
        await conn.fetch(database.q["subscribers-confirm"], [], [], [], [], [], [])
        await conn.fetch(database.q["subscribers-unsubscribe"], [], [], [], [], [], [], [], [])
        conn.add_query_logger(lambda logged: statements.append(cast(LoggedQuery, logged).query))
    try:
        yield database, statements
    finally:
        await database.close()


@pytest.fixture
async def racers(settings: Settings) -> AsyncIterator[Database]:
    """A pool with room for a lock holder, two changes waiting for it, and a look at the waiters."""
    database = await open_database(settings.database_url or "", pool_size=4, run_migrations=False)
    try:
        yield database
    finally:
        await database.close()


async def _reader(db: Database, email: str, *, status: str, lists: tuple[str, ...] = ("newsletter", "training"),
                  subscription: str) -> int:
    person: int = await db.pool.fetchval(
        "INSERT INTO subscribers (email, name, status) VALUES ($1, 'Reader', $2) RETURNING id", email, status)
    await db.pool.execute(
        "INSERT INTO subscriptions (list_id, subscriber_id, status) SELECT id, $1, $3 FROM lists WHERE slug = ANY ($2)",
        person, list(lists), subscription)
    return person


async def _list_id(db: Database, slug: str) -> int:
    found: int = await value(db, "SELECT id FROM lists WHERE slug = $1", slug)
    return found


async def test_confirming_is_one_statement(db: Database, one_connection: tuple[Database, list[str]]) -> None:
    person = await _reader(db, "ann@example.org", status="pending", subscription="pending")
    logged, statements = one_connection

    assert await lifecycle.confirm(logged.pool, logged.q, person, ACTOR)
    assert len(statements) == 1, statements
    assert await value(db, "SELECT status FROM subscribers WHERE id = $1", person) == "active"
    consent = (await rows(db, "SELECT action, lists, source, host(ip) AS ip FROM consents"))[0]
    assert dict(consent) == {"action": "confirm", "lists": ["newsletter", "training"], "source": "one-click",
                             "ip": "192.0.2.9"}


async def test_one_click_is_one_statement_and_says_what_is_left(
    db: Database, one_connection: tuple[Database, list[str]]
) -> None:
    person = await _reader(db, "bo@example.org", status="active", subscription="confirmed")
    logged, statements = one_connection

    left = await lifecycle.leave(logged.pool, logged.q, person, await _list_id(db, "newsletter"), None, ACTOR)
    assert len(statements) == 1, statements
    assert left == lifecycle.Left(lists=["newsletter"], remaining=["Training and events"])
    assert await value(db, "SELECT status FROM subscribers WHERE id = $1", person) == "active"
    left = await lifecycle.leave(logged.pool, logged.q, person, None, None, ACTOR)
    assert left == lifecycle.Left(lists=["training"], remaining=[])
    assert await value(db, "SELECT status FROM subscribers WHERE id = $1", person) == "unsubscribed"
    assert await lifecycle.leave(logged.pool, logged.q, person + 1000, None, None, ACTOR) is None


async def test_one_clicks_and_confirmations_handed_over_together_are_one_statement_each_answer_its_own(
    db: Database, settings: Settings, one_connection: tuple[Database, list[str]]
) -> None:
    # Handed over in an order that is not the people's, so the batch's own order must be undone.
    readers = [await _reader(db, f"r{n}@example.org", status="active", subscription="confirmed") for n in range(3)]
    pending = [await _reader(db, f"p{n}@example.org", status="pending", subscription="pending") for n in range(2)]
    newsletter = await _list_id(db, "newsletter")
    logged, statements = one_connection
    groups = Groups(logged, settings)

    def leaving(person: int, list_id: int | None) -> Awaitable[lifecycle.Left | None]:
        return lifecycle.leave_soon(groups, lifecycle.Leaving(person, list_id, None, ACTOR))

    left = await asyncio.gather(
        leaving(readers[2], None), leaving(readers[0], newsletter), leaving(readers[1], newsletter),
        leaving(readers[0], newsletter), leaving(readers[2] + 1000, None))
    confirmed = await asyncio.gather(
        lifecycle.confirm_soon(groups, pending[1], ACTOR), lifecycle.confirm_soon(groups, pending[1] + 1000, ACTOR),
        lifecycle.confirm_soon(groups, pending[0], ACTOR))

    # Every caller handed its change over before the group's task first ran: one batch, one statement each.
    assert len(statements) == 2, statements
    assert list(left) == [
        lifecycle.Left(lists=["newsletter", "training"], remaining=[]),
        lifecycle.Left(lists=["newsletter"], remaining=["Training and events"]),
        lifecycle.Left(lists=["newsletter"], remaining=["Training and events"]),
        lifecycle.Left(lists=[], remaining=["Training and events"]),  # the same link again: nothing more
        None,
    ]
    assert list(confirmed) == [True, False, True]
    statuses = {r["id"]: r["status"] for r in await rows(db, "SELECT id, status FROM subscribers")}
    assert [statuses[p] for p in readers + pending] == ["active", "active", "unsubscribed", "active", "active"]
    consents = await rows(db, "SELECT subscriber_id, action FROM consents ORDER BY subscriber_id, id")
    assert [(r["subscriber_id"], r["action"]) for r in consents] == [
        (readers[0], "unsubscribe"), (readers[1], "unsubscribe"), (readers[2], "unsubscribe"),
        (pending[0], "confirm"), (pending[1], "confirm")]


async def test_deciding_a_sign_up_and_queueing_its_mail_is_one_statement(
    db: Database, settings: Settings, one_connection: tuple[Database, list[str]]
) -> None:
    newsletter = (await rows(db, "SELECT id, slug, name, public FROM lists WHERE slug = 'newsletter'"))[0]
    sign_up = lifecycle.SignUp(email="cy@example.org", name="Cy", agency=None, role=None,
                               lists=[ListRef(newsletter["id"], newsletter["slug"], newsletter["name"], True)])
    recorded = await signups.record(db.pool, db.q, settings, sign_up, ACTOR, "192.0.2.9", 0.0)
    assert recorded.request_id is not None
    logged, statements = one_connection
    # asyncpg looks up an array parameter's type once per connection, by statements of its own.
    await logged.pool.fetch(logged.q["sign-up-requests-decide"], [])
    statements.clear()

    await signups.decide(Groups(logged, settings), recorded.request_id)
    assert [s.split()[0] for s in statements] == ["WITH"], statements
    assert await value(db, "SELECT count(*) FROM system_mails WHERE recipient = 'cy@example.org'") == 1
    assert await value(db, "SELECT lists FROM consents WHERE action = 'subscribe'") == ["newsletter"]


async def _lock_waits(db: Database) -> int:
    waiting: int = await db.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
    return waiting


async def _both_wait_for(racers: Database, person: int, first: Awaitable[Any], second: Awaitable[Any]) -> list[Any]:
    """Run two changes while another transaction holds the person's row, and let them go once both wait."""
    async with racers.transaction() as holder:
        await holder.execute("SELECT 1 FROM subscribers WHERE id = $1 FOR UPDATE", person)
        running = asyncio.gather(first, second)
        # Until both wait (or one has failed without waiting: the test must end and show it).
        while not running.done() and await _lock_waits(racers) < 2:  # noqa: ASYNC110 - no event for a lock wait
            await asyncio.sleep(0.01)
    return cast(list[Any], await running)


async def test_two_one_clicks_at_once_leave_once(db: Database, racers: Database) -> None:
    person = await _reader(db, "di@example.org", status="active", lists=("newsletter",), subscription="confirmed")
    newsletter = await _list_id(db, "newsletter")

    async def click() -> lifecycle.Left | None:
        return await lifecycle.leave(racers.pool, racers.q, person, newsletter, None, ACTOR)

    results = await _both_wait_for(racers, person, click(), click())
    assert sorted(result.lists for result in results) == [[], ["newsletter"]]
    assert await value(db, "SELECT count(*) FROM consents WHERE action = 'unsubscribe'") == 1
    assert await value(db, "SELECT status FROM subscribers WHERE id = $1", person) == "unsubscribed"


async def test_a_one_click_racing_a_new_sign_up_leaves_status_and_lists_agreeing(db: Database, racers: Database) -> None:
    person = await _reader(db, "ed@example.org", status="active", lists=("newsletter",), subscription="confirmed")
    newsletter = await _list_id(db, "newsletter")
    training = await _list_id(db, "training")
    leaving = lifecycle.leave(racers.pool, racers.q, person, newsletter, None, ACTOR)
    asking = racers.pool.fetchrow(racers.q["subscriber-request"], "ed@example.org", "Ed", None, None, {},
                                  [newsletter, training], "form", None, None, None)

    await _both_wait_for(racers, person, leaving, asking)
    lists = {r["slug"]: r["status"] for r in await rows(
        db, "SELECT l.slug, s.status FROM subscriptions s JOIN lists l ON l.id = s.list_id WHERE subscriber_id = $1",
        person)}
    # Whichever went first, the other saw its result: the newsletter is left or pending again, never
    # confirmed, the training list waits for confirmation, and the person has no confirmed list.
    assert lists["newsletter"] in ("unsubscribed", "pending") and lists["training"] == "pending", lists
    assert await value(db, "SELECT status FROM subscribers WHERE id = $1", person) == "unsubscribed"
    actions = [r["action"] for r in await rows(db, "SELECT action FROM consents ORDER BY id")]
    assert sorted(actions) == ["subscribe", "unsubscribe"], actions
