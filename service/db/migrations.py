"""Numbered SQL migrations: each applied once, in order, in its own transaction.

Two processes starting together must not race, so the whole run holds a
PostgreSQL advisory lock.  Each applied migration is recorded with a SHA-256
of its text; editing one after it was applied stops the start, because the
database would no longer be what the file says.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable

import asyncpg
import structlog

from .sql_files import sql_files

log = structlog.get_logger(__name__)

# Any constant works; it only has to be the same in every Letterbox process.
_ADVISORY_LOCK_KEY = 0x4C6574746572  # "Letter"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migration files and the database disagree, or a file is malformed."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text: what the database records."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(folder: Traversable) -> list[Migration]:
    """Read ``NNNN_name.sql`` files from ``folder`` in order; refuse none at all, gaps, duplicates and strays."""
    migrations: list[Migration] = []
    paths = sql_files(folder)
    if not paths:
        raise MigrationError(f"no migration files found in {folder}; the installation is incomplete")
    for path in paths:
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_case_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration {expected:04d} is missing or duplicated (found {migration.version:04d})")
    return migrations


async def migrate(conn: asyncpg.Connection, folder: Traversable) -> list[str]:
    """Apply pending migrations; return the names applied. Safe to call from many processes at once."""
    migrations = load_migrations(folder)
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = {r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")}
        for migration in migrations:
            recorded = applied.get(migration.version)
            if recorded is not None:
                if recorded["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was edited after it was applied; "
                        "add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version, migration.name, migration.checksum,
                )
            applied_now.append(f"{migration.version:04d}_{migration.name}")
            log.info("migration_applied", version=migration.version, name=migration.name)
        unknown = sorted(set(applied) - {m.version for m in migrations})
        if unknown:
            raise MigrationError(f"the database has migrations this code does not know: {unknown}; upgrade Letterbox")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    return applied_now


async def pending(conn: asyncpg.Connection, versions: Sequence[int]) -> list[int]:
    """Which of ``versions`` are not yet applied; all of them when the table is missing."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return list(versions)
    done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [v for v in versions if v not in done]
