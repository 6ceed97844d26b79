"""Per-test databases: each test starts on the migrated template's exact state.

Copying the template costs about a tenth of a second, more than most tests.  So a test
takes a database that is ready, and when it is done a thread of its own puts that
database back to the template's state while the next test runs: every row deleted,
the template's own rows copied back, every sequence set back.  A test that changed the
schema (a migration test, a dropped table, a database setting) is found by comparing a
fingerprint of the catalog with the template's; its database is dropped and replaced by
a new copy instead.  Slow tests, which load thousands of rows through real processes, take
a new copy and drop it after: nothing of an earlier test (planner statistics, dead rows)
reaches them.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")

# What a test could change that deleting rows would not put back.
_FINGERPRINT = """
SELECT md5(concat_ws('|',
    (SELECT string_agg(format('%s %s %s %s', n.nspname, c.relname, c.relkind, c.relpersistence), ','
                       ORDER BY n.nspname, c.relname)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'),
    (SELECT string_agg(format('%s %s %s %s %s %s', c.relname, a.attnum, a.attname, a.atttypid, a.attnotnull,
                              pg_get_expr(d.adbin, d.adrelid)), ',' ORDER BY c.relname, a.attnum)
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%' AND a.attnum > 0 AND NOT a.attisdropped),
    (SELECT string_agg(format('%s %s', conname, pg_get_constraintdef(oid)), ',' ORDER BY conrelid::regclass::text, conname)
       FROM pg_constraint WHERE connamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname LIKE 'pg_%'
                                                     OR nspname = 'information_schema')),
    (SELECT string_agg(format('%s %s', tgname, tgenabled), ',' ORDER BY tgrelid::regclass::text, tgname)
       FROM pg_trigger WHERE NOT tgisinternal),
    (SELECT string_agg(format('%s %s', p.oid::regprocedure, md5(p.prosrc)), ',' ORDER BY p.oid::regprocedure::text)
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'),
    (SELECT string_agg(format('%s %s', enumtypid::regtype, enumlabel), ',' ORDER BY enumtypid::regtype::text, enumsortorder)
       FROM pg_enum),
    (SELECT string_agg(array_to_string(setconfig, ';'), ',')
       FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()))
))
"""

_TABLES = """
SELECT n.nspname AS schema, c.relname AS name, format('%I.%I', n.nspname, c.relname) AS qualified
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'
 ORDER BY 1
"""

_SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename) AS name, coalesce(last_value, start_value) AS value,
       last_value IS NOT NULL AS called
  FROM pg_sequences
"""


@dataclass(frozen=True)
class _TemplateState:
    """What a database must hold to be the template again."""

    fingerprint: str
    tables: tuple[str, ...]
    """Every table, schema-qualified and quoted by PostgreSQL (``format('%I.%I')``)."""
    rows: dict[tuple[str, str], bytes]
    """Binary COPY of each table the template has rows in (the migrations' own rows), by (schema, name)."""
    sequences: tuple[tuple[str, int, bool], ...]


async def _read_template(dsn: str) -> _TemplateState:
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(_TABLES)
        rows: dict[tuple[str, str], bytes] = {}
        for table in tables:
            # Table names come from the catalog, quoted by format('%I'), never from input.
            if await conn.fetchval(f"SELECT EXISTS (SELECT FROM {table['qualified']})"):  # noqa: S608
                out = io.BytesIO()
                await conn.copy_from_table(table["name"], schema_name=table["schema"], output=out, format="binary")
                rows[table["schema"], table["name"]] = out.getvalue()
        sequences = tuple((r["name"], r["value"], r["called"]) for r in await conn.fetch(_SEQUENCES))
        qualified = tuple(table["qualified"] for table in tables)
        return _TemplateState(await conn.fetchval(_FINGERPRINT), qualified, rows, sequences)
    finally:
        await conn.close()


class DatabaseCopies:
    """Hands out databases in the template's state; call :meth:`close` before the server stops."""

    def __init__(self, admin_dsn: str, template: str, url_for: Callable[[str], str], *, spare: int = 2) -> None:
        self._template = template
        self._url_for = url_for
        prefix = f"letterbox_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self._names = (f"{prefix}_{n}" for n in itertools.count())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="database-copies", daemon=True)
        self._thread.start()
        # One connection does every copy and drop, one after another (``_turn``): PostgreSQL refuses
        # to copy a template another session is connected to, and copies are not faster side by side.
        self._turn = asyncio.Lock()
        self._state = self._run(_read_template(url_for(template))).result()
        self._admin: asyncpg.Connection = self._run(asyncpg.connect(admin_dsn)).result()
        self._ready: deque[Future[str]] = deque(self._run(self._copy()) for _ in range(spare))
        self._drops: list[Future[None]] = []

    def _run(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    async def _copy(self) -> str:
        name = next(self._names)
        async with self._turn:
            # Identifiers cannot be parameters; both names are made here, never from input.
            await self._admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return name

    async def _drop(self, name: str) -> None:
        async with self._turn:
            await self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _reset(self, name: str) -> bool:
        """Put ``name`` back to the template's state; False when its schema changed (drop it instead)."""
        async with self._turn:
            await self._admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
        conn = await asyncpg.connect(self._url_for(name))
        try:
            if await conn.fetchval(_FINGERPRINT) != self._state.fingerprint:
                return False
            async with conn.transaction():
                # Replica mode fires no trigger: no foreign-key checks, no append-only guard.
                await conn.execute("SET LOCAL session_replication_role = replica")
                # Table names come from the catalog, quoted by format('%I'), never from input.
                await conn.execute(";".join(f"DELETE FROM {table}" for table in self._state.tables))  # noqa: S608
                for (schema, table_name), rows in self._state.rows.items():
                    await conn.copy_to_table(table_name, schema_name=schema, source=io.BytesIO(rows), format="binary")
                await conn.executemany("SELECT setval($1::regclass, $2, $3)", self._state.sequences)
            return True
        finally:
            await conn.close()

    async def _recycle(self, name: str) -> str:
        """``name`` again once reset, or a new copy when it could not be."""
        try:
            if await self._reset(name):
                return name
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            pass  # a database the test left unusable: a new copy is always right
        await self._drop(name)
        return await self._copy()

    async def take(self, *, fresh: bool = False) -> str:
        """The name of a database in the template's state, yours until :meth:`give_back`.

        ``fresh``: a new copy, never one a test has used (its planner statistics and dead rows
        included), for the slow tests that load thousands of rows into real processes.
        """
        if fresh:
            return await asyncio.wrap_future(self._run(self._copy()))
        return await asyncio.wrap_future(self._ready.popleft())

    def give_back(self, name: str, *, reuse: bool = True) -> None:
        """Reset ``name`` behind the tests for a later test to take, or drop it when not to ``reuse``."""
        if reuse:
            self._ready.append(self._run(self._recycle(name)))
        else:
            self._drops = [drop for drop in self._drops if not drop.done()]
            self._drops.append(self._run(self._drop(name)))

    def close(self) -> None:
        """Drop every database and stop the thread (once; later calls do nothing)."""
        if self._loop.is_closed():
            return
        for drop in self._drops:
            drop.result()
        for ready in self._ready:
            self._run(self._drop(ready.result())).result()
        self._run(self._admin.close()).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
