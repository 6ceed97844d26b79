"""The one database handle: an asyncpg pool plus the named queries, opened at start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import asyncpg
import msgspec

from .migrations import migrate
from .queries import Queries, check_queries, load_queries

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

# What a database outage (restart, failover, network) looks like to a caller: loops that
# must outlive one wait and try again on these. InternalClientError shows up when a
# pooled connection was cut mid-operation by a server shutting down.
DATABASE_TROUBLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)
MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, through msgspec rather than the stdlib json.
    await conn.set_type_codec("jsonb", encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog")


class Database:
    """The pool and the queries: what every part of the service talks to PostgreSQL through."""

    def __init__(self, pool: asyncpg.Pool, queries: Queries) -> None:
        self.pool = pool
        self.q = queries

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside a transaction: committed on success, rolled back on error."""
        async with self.pool.acquire() as proxy, proxy.transaction():
            # The pool hands out a proxy that behaves as a Connection; say so once, here.
            yield cast(asyncpg.Connection, proxy)

    async def close(self) -> None:
        """Close every connection; waits for connections in use to be released."""
        await self.pool.close()


async def open_database(dsn: str, *, pool_size: int = 10, run_migrations: bool = True) -> Database:
    """Connect, migrate when asked, and check every named query; raise on any failure."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size, init=_init_connection)
    try:
        async with pool.acquire() as proxy:
            conn = cast(asyncpg.Connection, proxy)
            if run_migrations:
                await migrate(conn, MIGRATIONS_DIR)
            queries = load_queries(QUERIES_DIR)
            await check_queries(conn, queries)
    except BaseException:
        await pool.close()
        raise
    return Database(pool, queries)


async def ensure_database(admin_dsn: str, name: str) -> None:
    """Create database ``name`` if it does not exist (used with the embedded server)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
            # Identifiers cannot be parameters; ``name`` is ours, never user input.
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
