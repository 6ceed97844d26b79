"""The one database handle: an asyncpg pool plus the named queries, opened at start-up."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
import msgspec

from .migrations import MigrationError, load_migrations, migrate, pending
from .queries import Queries, check_queries, load_queries
from .sql_files import MIGRATIONS_DIR, QUERIES_DIR

Executor = asyncpg.Pool | asyncpg.Connection
"""Where a statement runs: the pool (a statement of its own, committed at once) or a transaction's connection."""

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


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, through msgspec rather than the stdlib json.
    await conn.set_type_codec("jsonb", encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog")


async def _keep_session(_: asyncpg.Connection) -> None:
    """Hand a released connection back as it is, with no ``RESET ALL`` round trip.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``
    on every release, a round trip per request.  We leave no session state to reset: settings
    are ``SET LOCAL`` (service/sql/queries/session.sql), the migration lock is released by its
    holder, and there are no cursors or LISTENs outside a transaction (asyncpg still rolls
    back a transaction left open, locally, before calling this).
    """


@functools.cache
def shipped_sql() -> tuple[tuple[int, ...], Queries]:
    """The migration versions and named queries this package ships, read once per process.

    The files are package data: they do not change under a running process, and every pool
    (a test opens hundreds) would otherwise parse them again.  A failure is not cached.
    """
    return tuple(m.version for m in load_migrations(MIGRATIONS_DIR)), load_queries(QUERIES_DIR)


class Database:
    """The pool and the queries: what every part of the service talks to PostgreSQL through."""

    def __init__(self, pool: asyncpg.Pool, queries: Queries, migrations: tuple[int, ...]) -> None:
        self.pool = pool
        self.q = queries
        self.migrations = migrations
        """The migration versions this code ships: what ``/readyz`` expects the database to have."""

    async def missing_migrations(self, conn: asyncpg.Connection) -> list[int]:
        """Versions this code ships that the database has not applied (all when it was never migrated)."""
        return await pending(conn, self.migrations)

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
    """Connect, migrate when asked, and check every named query; raise on any failure.

    Without ``run_migrations`` a database that lacks any migration this code ships is refused
    (:class:`MigrationError`): a process on a half-migrated schema would fail request by request.
    """
    migrations, shipped = shipped_sql()
    queries = shipped.copy()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size, init=_init_connection,
                                     reset=_keep_session)
    try:
        async with pool.acquire() as proxy:
            conn = cast(asyncpg.Connection, proxy)
            if run_migrations:
                await migrate(conn, MIGRATIONS_DIR)
            missing = await pending(conn, migrations)
            if missing:
                raise MigrationError(
                    f"the database lacks migrations {missing}; run 'letterbox migrate' first"
                )
            await check_queries(conn, queries)
    except BaseException:
        await pool.close()
        raise
    return Database(pool, queries, migrations)


async def ensure_database(admin_dsn: str, name: str) -> None:
    """Create database ``name`` if it does not exist (used with the embedded server)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
            # Identifiers cannot be parameters; ``name`` is ours, never user input.
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
