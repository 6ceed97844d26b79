"""The references the import's writes rely on, checked per statement (migration 0009), hold for every writer.

Subscriptions and consent records name a subscriber (and a list); people name an agency and a
role. Foreign keys used to check these row by row; set-based triggers check them now, and must
refuse, cascade and lock as the foreign keys did.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from service.db.pool import Database
from tests.subscribers.conftest import value
from tests.subscribers.test_unsubscribe import confirmed_reader, list_id

pytestmark = pytest.mark.usefixtures("demo")


async def _refused(db: Database, constraint: str, query: str, *args: object) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError) as caught:
        await db.pool.execute(query, *args)
    assert caught.value.constraint_name == constraint


async def test_rows_naming_what_does_not_exist_are_refused(db: Database) -> None:
    reader = await confirmed_reader(db, "ann@example.org", ("newsletter",))
    training = await list_id(db, "training")
    await _refused(db, "subscriptions_subscriber_id_fkey",
                   "INSERT INTO subscriptions (list_id, subscriber_id, status) VALUES ($1, $2, 'confirmed')",
                   training, reader + 1000)
    await _refused(db, "subscriptions_list_id_fkey",
                   "INSERT INTO subscriptions (list_id, subscriber_id, status) VALUES ($1, $2, 'confirmed')",
                   training + 1000, reader)
    await _refused(db, "consents_subscriber_id_fkey",
                   "INSERT INTO consents (subscriber_id, action, source) VALUES ($1, 'import', 'test')", reader + 1000)
    await _refused(db, "subscribers_agency_fkey",
                   "INSERT INTO subscribers (email, agency) VALUES ('bob@example.org', 'mi5')")
    await _refused(db, "subscribers_role_fkey",
                   "INSERT INTO subscribers (email, role) VALUES ('bob@example.org', 'spy')")
    # One bad row among good ones refuses the whole statement.
    await _refused(db, "subscriptions_subscriber_id_fkey",
                   "INSERT INTO subscriptions (list_id, subscriber_id, status) "
                   "SELECT $1, s, 'confirmed' FROM unnest($2::bigint[]) s", training, [reader, reader + 1000])
    # Changing a reference later is checked too.
    await _refused(db, "subscriptions_list_id_fkey",
                   "UPDATE subscriptions SET list_id = $1 WHERE subscriber_id = $2", training + 1000, reader)
    await _refused(db, "subscribers_agency_fkey", "UPDATE subscribers SET agency = 'mi5' WHERE id = $1", reader)
    await _refused(db, "subscribers_role_fkey", "UPDATE subscribers SET role = 'spy' WHERE id = $1", reader)
    assert await value(db, "SELECT count(*) FROM subscriptions") == 1
    assert await value(db, "SELECT count(*) FROM consents") == 0
    assert await value(db, "SELECT count(*) FROM subscribers") == 1


async def test_rows_naming_people_of_the_same_transaction_are_checked_too(db: Database) -> None:
    # An import's batch names only people its own transaction created (migration 0015 counts
    # them in one pass, without locking them): a missing one among them is still refused.
    # Its merge names people it locked beforehand: those are not locked again, and are checked.
    training = await list_id(db, "training")
    bob = await confirmed_reader(db, "bob@example.org", ())
    async with db.pool.acquire() as conn, conn.transaction():
        ann = await conn.fetchval("INSERT INTO subscribers (email) VALUES ('ann@example.org') RETURNING id")
        await conn.execute("SELECT FROM subscribers WHERE id = $1 FOR NO KEY UPDATE", bob)
        for statement, constraint in (
            ("INSERT INTO subscriptions (list_id, subscriber_id, status) "
             "SELECT $1, s, 'confirmed' FROM unnest($2::bigint[]) s", "subscriptions_subscriber_id_fkey"),
            ("INSERT INTO consents (subscriber_id, action, source) "
             "SELECT s, 'import', 'test' FROM unnest($2::bigint[]) s WHERE $1::bigint IS NOT NULL",
             "consents_subscriber_id_fkey"),
        ):
            for named in ([ann, bob + 1000], [bob, bob + 1000]):
                with pytest.raises(asyncpg.ForeignKeyViolationError) as caught:
                    async with conn.transaction():  # a savepoint: the refusal leaves the transaction usable
                        await conn.execute(statement, training, named)
                assert caught.value.constraint_name == constraint
            await conn.execute(statement, training, [ann, bob])
    assert await value(db, "SELECT count(*) FROM subscriptions") == 2
    assert await value(db, "SELECT count(*) FROM consents") == 2


async def test_deleting_a_person_or_a_list_deletes_what_names_it(db: Database) -> None:
    ann = await confirmed_reader(db, "ann@example.org", ("newsletter", "training"))
    bob = await confirmed_reader(db, "bob@example.org", ("newsletter",))
    await db.pool.execute("INSERT INTO consents (subscriber_id, action, source) SELECT unnest($1::bigint[]), "
                          "'import', 'test'", [ann, bob])
    await db.pool.execute("DELETE FROM subscribers WHERE id = $1", ann)
    assert await value(db, "SELECT array_agg(DISTINCT subscriber_id) FROM subscriptions") == [bob]
    assert await value(db, "SELECT array_agg(subscriber_id) FROM consents") == [bob]
    await db.pool.execute("DELETE FROM lists WHERE slug = 'newsletter'")
    assert await value(db, "SELECT count(*) FROM subscriptions") == 0
    await confirmed_reader(db, "cat@example.org", ("training",))
    with pytest.raises(asyncpg.FeatureNotSupportedError):
        await db.pool.execute("TRUNCATE lists")
    await db.pool.execute("TRUNCATE lists, subscriptions")


async def test_agencies_and_roles_rename_onto_people_and_cannot_go_while_named(db: Database) -> None:
    ann = await confirmed_reader(db, "ann@example.org", ("newsletter",))
    await db.pool.execute("UPDATE subscribers SET agency = 'police', role = 'practitioner' WHERE id = $1", ann)
    await db.pool.execute("UPDATE agencies SET slug = 'constabulary' WHERE slug = 'police'")
    await db.pool.execute("UPDATE roles SET slug = 'frontline' WHERE slug = 'practitioner'")
    assert await value(db, "SELECT agency || '/' || role FROM subscribers WHERE id = $1", ann) == "constabulary/frontline"
    await _refused(db, "subscribers_agency_fkey", "DELETE FROM agencies WHERE slug = 'constabulary'")
    await _refused(db, "subscribers_role_fkey", "DELETE FROM roles WHERE slug = 'frontline'")
    with pytest.raises(asyncpg.FeatureNotSupportedError):
        await db.pool.execute("TRUNCATE roles")
    await db.pool.execute("DELETE FROM agencies WHERE slug = 'health'")  # named by no one
    await db.pool.execute("UPDATE subscribers SET agency = NULL, role = NULL WHERE id = $1", ann)
    await db.pool.execute("DELETE FROM agencies WHERE slug = 'constabulary'")


async def _waiting_for_a_lock(db: Database, pid: int) -> None:
    """Return once backend ``pid`` waits for a row lock (what a foreign key's check makes a delete do)."""
    for _ in range(500):
        if await value(db, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the delete never waited for the inserting transaction")


async def test_a_delete_racing_an_insert_leaves_no_orphan(db: Database, other: asyncpg.Connection) -> None:
    reader = await confirmed_reader(db, "ann@example.org", ("newsletter",))
    training = await list_id(db, "training")
    async with db.pool.acquire() as inserting, inserting.transaction():
        await inserting.execute("INSERT INTO subscriptions (list_id, subscriber_id, status) "
                                "VALUES ($1, $2, 'confirmed')", training, reader)
        await inserting.execute("INSERT INTO consents (subscriber_id, action, source) VALUES ($1, 'import', 'x')",
                                reader)
        deleting = asyncio.ensure_future(other.execute("DELETE FROM subscribers WHERE id = $1", reader))
        await _waiting_for_a_lock(db, other.get_server_pid())
    await deleting
    assert await value(db, "SELECT count(*) FROM subscriptions") == 0
    assert await value(db, "SELECT count(*) FROM consents") == 0


async def test_an_insert_racing_a_delete_is_refused(db: Database, other: asyncpg.Connection) -> None:
    reader = await confirmed_reader(db, "ann@example.org", ("newsletter",))
    training = await list_id(db, "training")
    deleting = other.transaction()
    await deleting.start()
    await other.execute("DELETE FROM subscribers WHERE id = $1", reader)
    async with db.pool.acquire() as inserting:
        pid = inserting.get_server_pid()
        refused = asyncio.ensure_future(inserting.execute(
            "INSERT INTO subscriptions (list_id, subscriber_id, status) VALUES ($1, $2, 'confirmed')",
            training, reader))
        await _waiting_for_a_lock(db, pid)
        await deleting.commit()
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await refused
    assert await value(db, "SELECT count(*) FROM subscriptions") == 0


async def test_people_written_from_the_same_savepoint_are_counted_not_locked(db: Database) -> None:
    # Each batch of new people is written from a savepoint, whose rows carry the savepoint's own
    # transaction id (migration 0017): in a statement naming at least 64 people, those are known
    # for this transaction's and need no lock, while a person committed by someone else is still
    # locked, and a missing one is still refused. A smaller statement locks them, as before.
    training, newsletter = await list_id(db, "training"), await list_id(db, "newsletter")
    bob = await confirmed_reader(db, "bob@example.org", ())
    write = ("WITH p AS (INSERT INTO subscribers (email) SELECT unnest($2::text[]) RETURNING id), "
             "s AS (INSERT INTO subscriptions (list_id, subscriber_id, status) "
             "      SELECT $1::bigint, id, 'confirmed' FROM p UNION ALL SELECT $1, x, 'confirmed' FROM unnest($3::bigint[]) x) "
             "INSERT INTO consents (subscriber_id, action, source) "
             "SELECT id, 'import', 'test' FROM p UNION ALL SELECT x, 'import', 'test' FROM unnest($3::bigint[]) x")
    locked = "SELECT count(*) FILTER (WHERE xmax <> 0), bool_or(xmax <> 0 AND email = 'bob@example.org') FROM subscribers"
    many = [f"new{i}@example.org" for i in range(70)]
    async with db.pool.acquire() as conn, conn.transaction():
        async with conn.transaction():
            await conn.execute(write, training, many, [bob])
        assert tuple(await conn.fetchrow(locked) or ()) == (1, True)
        async with conn.transaction():
            await conn.execute(write, newsletter, ["few@example.org"], [])
        assert tuple(await conn.fetchrow(locked) or ()) == (2, True)
        for missing in ([bob + 1000], [bob, bob + 1000]):
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                async with conn.transaction():
                    await conn.execute(write, newsletter, [f"late{i}@example.org" for i in range(70)], missing)
    assert await value(db, "SELECT count(*) FROM subscriptions") == 72
    assert await value(db, "SELECT count(*) FROM consents") == 72
