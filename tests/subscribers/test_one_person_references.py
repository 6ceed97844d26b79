"""A consent record about one person takes the reference check's short path (migration 0013), and that
path refuses, locks and cascades exactly as the set-based one (and the foreign key before it) did."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from service.db.pool import Database
from tests.subscribers.conftest import value
from tests.subscribers.test_unsubscribe import confirmed_reader

pytestmark = pytest.mark.usefixtures("demo")
RECORD = "INSERT INTO consents (subscriber_id, action, source) VALUES ($1, 'unsubscribe', 'one-click')"


async def _until_waiting(db: Database, pid: int) -> None:
    """Return once backend ``pid`` waits for a lock; fail if it never does."""
    for _ in range(500):
        if await value(db, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


async def test_a_record_about_someone_not_on_file_is_refused(db: Database) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    with pytest.raises(asyncpg.ForeignKeyViolationError) as caught:
        await db.pool.execute(RECORD, reader + 1000)
    assert caught.value.constraint_name == "consents_subscriber_id_fkey"
    assert caught.value.detail == f'Key (subscriber_id)=({reader + 1000}) is not present in table "subscribers".'
    # The same inside a transaction that has just changed someone else.
    async with db.transaction() as conn:
        await conn.execute("UPDATE subscribers SET name = 'Ann B' WHERE id = $1", reader)
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(RECORD, reader + 1000)
    assert await value(db, "SELECT count(*) FROM consents") == 0


async def test_a_delete_waits_for_a_record_written_beside_it_and_takes_it_along(
    db: Database, other: asyncpg.Connection
) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    async with db.transaction() as inserting:
        await inserting.execute(RECORD, reader)
        deleting = asyncio.ensure_future(other.execute("DELETE FROM subscribers WHERE id = $1", reader))
        await _until_waiting(db, other.get_server_pid())
    await deleting
    assert await value(db, "SELECT count(*) FROM consents") == 0, "no record names someone gone"


async def test_a_record_written_while_its_person_is_deleted_is_refused(db: Database, other: asyncpg.Connection) -> None:
    reader = await confirmed_reader(db, "ann@example.org")
    deleting = other.transaction()
    await deleting.start()
    await other.execute("DELETE FROM subscribers WHERE id = $1", reader)
    async with db.pool.acquire() as inserting:
        refused = asyncio.ensure_future(inserting.execute(RECORD, reader))
        await _until_waiting(db, inserting.get_server_pid())
        await deleting.commit()
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await refused
    assert await value(db, "SELECT count(*) FROM consents") == 0


async def test_a_record_about_a_change_of_the_same_transaction_is_not_orphaned(
    db: Database, other: asyncpg.Connection
) -> None:
    # The person's row, written by the inserting transaction, is not locked again: the delete
    # already waits for that transaction, and then sees the record.
    reader = await confirmed_reader(db, "ann@example.org")
    async with db.transaction() as inserting:
        await inserting.execute("UPDATE subscribers SET status = 'unsubscribed' WHERE id = $1", reader)
        await inserting.execute(RECORD, reader)
        deleting = asyncio.ensure_future(other.execute("DELETE FROM subscribers WHERE id = $1", reader))
        await _until_waiting(db, other.get_server_pid())
    await deleting
    assert await value(db, "SELECT count(*) FROM consents") == 0
