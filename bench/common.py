"""Shared pieces of the benchmarks: a throwaway PostgreSQL and set-based seeding."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from service.db.embedded import EmbeddedPostgres
from service.db.pool import ensure_database, open_database


@contextmanager
def bench_database(name: str = "letterbox_bench") -> Iterator[str]:
    """A migrated database: on ``LETTERBOX_BENCH_DATABASE_URL``'s server if set, else an embedded one."""
    given = os.environ.get("LETTERBOX_BENCH_DATABASE_URL")
    if given:
        yield given
        return
    root = Path(tempfile.mkdtemp(prefix="letterbox-bench-"))
    root.chmod(0o755)  # our own folder: the unprivileged server user must reach it when run as root
    server = EmbeddedPostgres(root / "postgres")
    server.start()
    try:
        asyncio.run(ensure_database(server.dsn(), name))
        url = server.dsn(name)

        async def migrate() -> None:
            db = await open_database(url, pool_size=2)
            await db.close()

        asyncio.run(migrate())
        yield url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def seed(url: str, count: int) -> None:
    """``count`` active readers in several agencies and roles, confirmed on the list ``news``."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO agencies (slug, name) SELECT 'agency-' || g, 'Agency ' || g FROM generate_series(1, 8) g
                ON CONFLICT DO NOTHING;
            INSERT INTO roles (slug, name) SELECT 'role-' || g, 'Role ' || g FROM generate_series(1, 4) g
                ON CONFLICT DO NOTHING;
            INSERT INTO lists (slug, name) VALUES ('news', 'Newsletter'), ('training', 'Training')
                ON CONFLICT DO NOTHING;
            """
        )
        await conn.execute(
            """
            INSERT INTO subscribers (email, name, agency, role, status, confirmed_at, attributes)
            SELECT 'reader' || g || '@example.org', 'Reader ' || g, 'agency-' || (g % 8 + 1), 'role-' || (g % 4 + 1),
                   'active', now(), jsonb_build_object('district', 'd' || (g % 20))
            FROM generate_series(1, $1) AS g
            """,
            count,
        )
        await conn.execute(
            """
            INSERT INTO subscriptions (list_id, subscriber_id, status)
            SELECT (SELECT id FROM lists WHERE slug = 'news'), id, 'confirmed' FROM subscribers
            """
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
