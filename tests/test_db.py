"""Migrations and named queries against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from service.db.migrations import MigrationError, load_migrations, migrate, pending
from service.db.pool import open_database
from service.db.queries import QueryError, check_queries, load_queries
from service.db.sql_files import MIGRATIONS_DIR, QUERIES_DIR


def _write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(sql)


async def test_the_real_migrations_are_applied_once(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await migrate(conn, MIGRATIONS_DIR) == []  # the template already applied them
        assert await pending(conn, [m.version for m in load_migrations(MIGRATIONS_DIR)]) == []
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in load_migrations(MIGRATIONS_DIR)]
    finally:
        await conn.close()


async def test_migrations_apply_in_order_and_refuse_edits(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    _write(folder, "0001_first.sql", "CREATE TABLE t1 (id int PRIMARY KEY);")
    _write(folder, "0002_second.sql", "CREATE TABLE t2 (id int REFERENCES t1 (id) DEFERRABLE);")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP TABLE schema_migrations")
        assert await pending(conn, [m.version for m in load_migrations(folder)]) == [1, 2]
        assert await migrate(conn, folder) == ["0001_first", "0002_second"]
        assert await migrate(conn, folder) == []
        _write(folder, "0002_second.sql", "CREATE TABLE t2 (id bigint);")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrate(conn, folder)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_done(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    _write(folder, "0001_broken.sql", "CREATE TABLE half (id int); SELECT no_such_function();")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP TABLE schema_migrations")
        with pytest.raises(asyncpg.PostgresError):
            await migrate(conn, folder)
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
    finally:
        await conn.close()


async def test_two_processes_migrating_at_once_do_not_race(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    # Slow enough that without the advisory lock both would try to create the table.
    _write(folder, "0001_slow.sql", "SELECT pg_sleep(0.3); CREATE TABLE raced (id int);")
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        await first.execute("DROP TABLE schema_migrations")
        results = await asyncio.gather(migrate(first, folder), migrate(second, folder))
        assert sorted(len(r) for r in results) == [0, 1]
    finally:
        await first.close()
        await second.close()


def test_misnamed_or_missing_migrations_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "SELECT 1;")
    _write(tmp_path, "0003_c.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="0002"):
        load_migrations(tmp_path)
    _write(tmp_path, "2-bad.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN"):
        load_migrations(tmp_path)


async def test_every_named_query_prepares(database_url: str) -> None:
    queries = load_queries(QUERIES_DIR)
    assert "api-key-by-prefix" in queries
    conn = await asyncpg.connect(database_url)
    try:
        await check_queries(conn, queries)
    finally:
        await conn.close()


async def test_a_broken_query_stops_the_check(database_url: str, tmp_path: Path) -> None:
    _write(tmp_path, "broken.sql", "-- name: broken-query\n-- Selects a column that does not exist.\nSELECT nope FROM lists;\n")
    queries = load_queries(tmp_path)
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(QueryError, match="broken-query"):
            await check_queries(conn, queries)
    finally:
        await conn.close()


async def test_queries_are_checked_again_when_they_or_the_schema_change(database_url: str, tmp_path: Path) -> None:
    # A process checks a set of queries against a schema once; a changed query, or the same
    # queries on a schema with another migration history, is prepared again.
    _write(tmp_path, "a.sql", "-- name: one\nSELECT id FROM lists;\n")
    conn = await asyncpg.connect(database_url)
    try:
        await check_queries(conn, load_queries(tmp_path))
        _write(tmp_path, "a.sql", "-- name: one\nSELECT nope FROM lists;\n")
        with pytest.raises(QueryError, match="one"):
            await check_queries(conn, load_queries(tmp_path))
        _write(tmp_path, "a.sql", "-- name: one\nSELECT id FROM lists;\n")
        await conn.execute("ALTER TABLE lists RENAME COLUMN id TO list_id")
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(QueryError, match="one"):
            await check_queries(conn, load_queries(tmp_path))
    finally:
        await conn.close()


def test_query_files_must_name_every_query(tmp_path: Path) -> None:
    _write(tmp_path, "a.sql", "SELECT 1;\n")
    with pytest.raises(QueryError, match="name"):
        load_queries(tmp_path)
    (tmp_path / "a.sql").write_text("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n")
    with pytest.raises(QueryError, match="twice"):
        load_queries(tmp_path)
    with pytest.raises(QueryError, match="no query named"):
        load_queries(QUERIES_DIR)["not-a-query"]


def test_an_installation_without_its_sql_is_refused(tmp_path: Path) -> None:
    # What a wheel without its package data looked like: folders missing or empty.
    for folder in (tmp_path / "missing", tmp_path):
        with pytest.raises(MigrationError, match="no migration files found"):
            load_migrations(folder)
        with pytest.raises(QueryError, match="no query files found"):
            load_queries(folder)


async def test_a_database_missing_a_migration_is_refused_at_start(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)")
    finally:
        await conn.close()
    with pytest.raises(MigrationError, match="lacks migrations"):
        await open_database(database_url, pool_size=2, run_migrations=False)
