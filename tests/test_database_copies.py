"""The per-test databases (tests/support/databases.py): a database handed back is the template again."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest

from tests.conftest import _with_database
from tests.support.databases import DatabaseCopies

_TABLES = """
SELECT format('%I.%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname = 'public'
 ORDER BY 1
"""
_SEQUENCES = "SELECT sequencename, last_value FROM pg_sequences ORDER BY 1"


@pytest.fixture
def copies(postgres_admin_dsn: str, template_database: str) -> Iterator[DatabaseCopies]:
    """A handful of copies of its own, one spare, so a database handed back is the next one taken."""
    own = DatabaseCopies(postgres_admin_dsn, template_database, lambda name: _with_database(postgres_admin_dsn, name),
                         spare=1)
    try:
        yield own
    finally:
        own.close()


async def _state(url: str) -> tuple[dict[str, str | None], list[asyncpg.Record]]:
    """Every table's rows (as a digest) and every sequence's position."""
    conn = await asyncpg.connect(url)
    try:
        tables = [r[0] for r in await conn.fetch(_TABLES)]
        # Names from the catalog, quoted by format('%I'); the digest is NULL for an empty table.
        rows = {
            table: await conn.fetchval(f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t")  # noqa: S608
            for table in tables
        }
        return rows, await conn.fetch(_SEQUENCES)
    finally:
        await conn.close()


async def test_a_database_handed_back_holds_the_template_state_again(
    copies: DatabaseCopies, postgres_admin_dsn: str, template_database: str
) -> None:
    template = await _state(_with_database(postgres_admin_dsn, template_database))
    name = await copies.take()
    url = _with_database(postgres_admin_dsn, name)
    conn = await asyncpg.connect(url)
    try:
        # Rows in a table the template seeds, in one it leaves empty, one guarded by an append-only
        # trigger, and sequences moved on; a connection left open as a careless test would.
        await conn.execute("INSERT INTO agencies (slug, name) VALUES ('extra', 'Extra')")
        await conn.execute("INSERT INTO audit_log (actor, action, object_type, object_id) VALUES ('t', 'a', 'b', 'c')")
        await conn.execute("SELECT nextval(sequencename::regclass) FROM pg_sequences")
        assert await _state(url) != template, "the test wrote nothing the check could see"
        copies.give_back(name)
        again = await copies.take()
    finally:
        await conn.close()
    assert again == name, "reset and reused, not copied again"
    assert await _state(url) == template


async def test_a_database_whose_schema_changed_is_replaced(copies: DatabaseCopies, postgres_admin_dsn: str) -> None:
    name = await copies.take()
    conn = await asyncpg.connect(_with_database(postgres_admin_dsn, name))
    try:
        await conn.execute("ALTER TABLE agencies ADD COLUMN colour text")
    finally:
        await conn.close()
    copies.give_back(name)
    assert await copies.take() != name


async def test_a_fresh_copy_is_new_and_dropped_after(copies: DatabaseCopies, postgres_admin_dsn: str) -> None:
    reused = await copies.take()
    copies.give_back(reused)
    fresh = await copies.take(fresh=True)
    assert fresh != reused
    copies.give_back(fresh, reuse=False)
    assert await copies.take() == reused, "the fresh one did not join the databases handed out again"
    copies.close()  # waits for the drop
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", fresh) == 0
    finally:
        await admin.close()
