"""Segment preview benchmark: count a typical audience among 1,000,000 subscribers through
``count_audience`` (the compiled filter in the audience-count query), beside a hand-written
``count(*)`` of the same set, measured in the same run, each best of N.

    .venv/bin/python -m bench.segment_preview [--subscribers 1000000] [--rounds 7] [--explain]

Uses a scratch database on ``LETTERBOX_BENCH_DATABASE_URL``'s server (the user must be
allowed to CREATE DATABASE) when set, else a throwaway embedded PostgreSQL.  Targets:
within 1.5x of the hand-written query and under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from service.db.embedded import EmbeddedPostgres
from service.db.pool import Database, open_database
from service.segments.audience_count import count_audience
from service.segments.compile import compile_filter
from service.segments.filter import parse_filter

TARGET_RATIO = 1.5
TARGET_SECONDS = 1.0
# The typical preview: two agencies and not one role, on one list.
FILTER = {"all": [
    {"field": "agency", "op": "in", "value": ["agency-1", "agency-2"]},
    {"not": {"field": "role", "op": "eq", "value": "role-1"}},
]}
HAND_WRITTEN = """
SELECT count(*)
FROM subscribers s
WHERE s.status = 'active'
  AND s.agency IN ('agency-1', 'agency-2')
  AND s.role IS DISTINCT FROM 'role-1'
  AND EXISTS (SELECT 1 FROM subscriptions sub
              WHERE sub.subscriber_id = s.id AND sub.list_id = $1 AND sub.status = 'confirmed')
  AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = s.email_hash)
"""
# Set-based and seeded, so every run builds the same population in well under a minute:
# 12 agencies (5 % none), 6 roles (10 % none), mostly active, one to three of four lists,
# 1 % suppressed, and a few attributes.
SEED = """
SELECT setseed(0.42);
INSERT INTO agencies (slug, name) SELECT 'agency-' || g, 'Agency ' || g FROM generate_series(1, 12) g;
INSERT INTO roles (slug, name) SELECT 'role-' || g, 'Role ' || g FROM generate_series(1, 6) g;
INSERT INTO lists (slug, name) SELECT 'list-' || g, 'List ' || g FROM generate_series(1, 4) g;
CREATE TEMP TABLE draws AS
SELECT g, random() AS a, random() AS r, random() AS st, random() AS l, random() AS x FROM generate_series(1, {n}) g;
INSERT INTO subscribers (email, name, agency, role, status, created_at, confirmed_at, attributes)
SELECT 'reader' || g || '@example.org', 'Reader ' || g,
       CASE WHEN a < 0.05 THEN NULL ELSE 'agency-' || (1 + floor(a * 1000)::int % 12) END,
       CASE WHEN r < 0.10 THEN NULL ELSE 'role-' || (1 + floor(r * 1000)::int % 6) END,
       CASE WHEN st < 0.85 THEN 'active' WHEN st < 0.90 THEN 'pending' WHEN st < 0.96 THEN 'unsubscribed'
            WHEN st < 0.99 THEN 'bounced' ELSE 'complained' END,
       now() - make_interval(hours => g % 26000),
       CASE WHEN st < 0.85 OR st >= 0.90 THEN now() - make_interval(hours => g % 26000) END,
       jsonb_build_object('district', 'd' || (g % 40), 'years', g % 30)
         || CASE WHEN x < 0.2 THEN '{"tags": ["sen", "dsl"]}'::jsonb ELSE '{}'::jsonb END
FROM draws ORDER BY g;
INSERT INTO subscriptions (list_id, subscriber_id, status)
SELECT l.id, s.id, CASE WHEN d.x < 0.97 THEN 'confirmed' ELSE 'unsubscribed' END
FROM subscribers s JOIN draws d ON d.g = s.id JOIN lists l
  ON (l.slug = 'list-1' AND d.l < 0.70) OR (l.slug = 'list-2' AND d.l > 0.55)
  OR (l.slug = 'list-3' AND d.l BETWEEN 0.3 AND 0.5) OR (l.slug = 'list-4' AND d.x > 0.9);
INSERT INTO suppressions (email_hash, email, reason)
SELECT email_hash, email, 'hard_bounce' FROM subscribers WHERE id % 100 = 7;
"""


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh, migrated database, dropped afterwards (with a given server) or thrown away with its server."""
    given = os.environ.get("LETTERBOX_BENCH_DATABASE_URL")
    root = None if given else Path(tempfile.mkdtemp(prefix="letterbox-bench-"))
    server = None
    if root is not None:
        root.chmod(0o755)  # our own folder: the unprivileged server user must reach it when run as root
        server = EmbeddedPostgres(root / "postgres", durable=False)
        server.start()
    admin = given or (server.dsn() if server else "")
    name = f"letterbox_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(admin)._replace(path="/" + name))
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if server is not None and root is not None:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def best_of(rounds: int, run: Callable[[], Awaitable[int]]) -> tuple[float, float, int]:
    """(best, median) seconds over ``rounds`` runs after one warm-up, and the count it gave."""
    count = await run()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        assert await run() == count
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times), count


async def measure(url: str, subscribers: int, rounds: int, explain: bool) -> bool:
    db: Database = await open_database(url, pool_size=2)
    try:
        async with db.pool.acquire() as proxy:
            conn = cast(asyncpg.Connection, proxy)
            started = time.perf_counter()
            await conn.execute(SEED.replace("{n}", str(int(subscribers))))
            await conn.execute("VACUUM ANALYZE")
            print(f"seeded {subscribers:,} subscribers in {time.perf_counter() - started:.1f} s")
            list_id = await conn.fetchval("SELECT id FROM lists WHERE slug = 'list-1'")
            node = parse_filter(FILTER)
            ours = await best_of(rounds, lambda: count_audience(conn, db, [list_id], node))
            bare = await best_of(rounds, lambda: conn.fetchval(HAND_WRITTEN, list_id))
            if explain:
                fragment, params = compile_filter(node, first_param=2)
                sql = db.q["audience-count"].replace("TRUE /* segment-filter */", f"({fragment})")
                for title, text, args in (("count_audience", sql, [[list_id], *params]),
                                          ("hand-written", HAND_WRITTEN, [list_id])):
                    plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {text}", *args)
                    print(f"\n-- {title}\n" + "\n".join(r[0] for r in plan))
    finally:
        await db.close()
    if ours[2] != bare[2]:
        print(f"MISMATCH: count_audience counted {ours[2]:,}, the hand-written query {bare[2]:,}")
        return False
    ratio = ours[0] / bare[0]
    print(f"audience: {ours[2]:,} of {subscribers:,} subscribers; best of {rounds} (median in brackets)")
    print(f"count_audience: {ours[0] * 1000:8.1f} ms ({ours[1] * 1000:.1f} ms)")
    print(f"hand-written:   {bare[0] * 1000:8.1f} ms ({bare[1] * 1000:.1f} ms)")
    ok = ratio <= TARGET_RATIO and ours[0] < TARGET_SECONDS
    print(f"ratio: {ratio:.2f}x (target <= {TARGET_RATIO}x and < {TARGET_SECONDS:.0f} s): {'met' if ok else 'MISSED'}")
    return ok


def main() -> int:
    """Build the population, time both counts, print the figures; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of both queries")
    args = parser.parse_args()
    with scratch_database() as url:
        return 0 if asyncio.run(measure(url, args.subscribers, args.rounds, args.explain)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
