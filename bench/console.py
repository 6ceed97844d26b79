"""Console benchmark: every console page with 100,000 readers and 1,000,000 copies, beside a bare
``SELECT count(*) FROM deliveries`` measured in the same run.

    .venv/bin/python -m bench.console [--readers 100000] [--editions 10] [--rounds 5]

Seeds readers over a year (bench.common.seed, then spread in time), ten editions over the last 30
days with a copy for every reader each (loaded with COPY), the last one half sent, 1 % of copies
bounced, 0.1 % complained, unsubscribes and suppressions. Each page is requested through the app
(signed in as an admin, so every button is drawn) and timed best of N; each page's data function is
timed on its own too. The first dashboard view after the seed counts the 29 finished days once
(they are kept; service/sql/queries/daily_figures.sql) and is shown apart. Target: every page < 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from bench.common import bench_database, seed
from service.accounts.users import create_user
from service.app import create_app
from service.console.pages.bounces import recent_reports
from service.console.pages.dashboard import load_dashboard
from service.console.pages.editions import list_editions, load_edition
from service.console.pages.lists import load_taxonomy
from service.console.pages.readers import load_reader, search_readers
from service.db.pool import Database, open_database
from service.settings import Settings

TARGET_MS = 200
PASSWORD = "bench console password 0123"
BASELINE = "SELECT count(*) FROM deliveries"


async def seed_console(url: str, readers: int, editions: int) -> None:
    """Readers over a year, ``editions`` editions over 30 days with a copy each, bounces, unsubscribes."""
    await seed(url, readers)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            UPDATE subscribers SET created_at = now() - make_interval(hours => ((id * 7919) % 8760)::int),
                                   confirmed_at = now() - make_interval(hours => ((id * 7919) % 8760)::int),
                                   status = CASE WHEN id % 40 = 0 THEN 'unsubscribed' WHEN id % 97 = 0 THEN 'bounced'
                                                 ELSE 'active' END
            """
        )
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM subscribers ORDER BY id")]
        now = datetime.now(UTC)
        rng = random.Random(42)
        for n in range(editions):
            started = now - timedelta(days=27 - 3 * n)
            in_flight = n == editions - 1
            edition_id = await conn.fetchval(
                "INSERT INTO editions (idempotency_key, request_hash, subject, html, from_addr, list_ids, status, "
                "recipients, created_at, started_at, finished_at) VALUES ($1, '', $2, '<p>Hello</p>', "
                "'news@example.org', ARRAY[(SELECT id FROM lists WHERE slug = 'news')], $3, $4, $5, $5, $6) "
                "RETURNING id",
                f"bench-{n}", f"Edition {n + 1}", "sending" if in_flight else "done", len(ids), started,
                None if in_flight else started + timedelta(hours=3),
            )
            records: list[tuple[int, int, str, int, datetime | None]] = []
            for i, subscriber_id in enumerate(ids):
                if in_flight and i >= len(ids) // 2:
                    records.append((edition_id, subscriber_id, "queued", 0, None))
                    continue
                roll = rng.random()
                status = "sent" if roll < 0.97 else "failed" if roll < 0.99 else "skipped"
                sent_at = started + timedelta(seconds=i * 0.1) if status == "sent" else None
                records.append((edition_id, subscriber_id, status, 1, sent_at))
            await conn.copy_records_to_table(
                "deliveries", records=records,
                columns=["edition_id", "subscriber_id", "status", "attempts", "sent_at"],
            )
        await conn.execute(
            """
            INSERT INTO bounce_events (subscriber_id, delivery_id, edition_id, email_hash, kind, source, counted,
                                       created_at, diagnostic)
            SELECT d.subscriber_id, d.id, d.edition_id, s.email_hash,
                   CASE WHEN d.id % 1000 = 7 THEN 'complaint' ELSE 'hard' END, 'bench', d.id % 1000 <> 7,
                   d.sent_at + interval '1 hour', '550 5.1.1 no such user'
            FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
            WHERE d.status = 'sent' AND (d.id % 100 = 3 OR d.id % 1000 = 7);
            INSERT INTO bounce_events (email_hash, kind, source, created_at, diagnostic)
            SELECT email_hash('stranger' || g || '@example.net'), 'hard', 'bench', now() - make_interval(hours => g),
                   '550 5.1.1 unknown'
            FROM generate_series(1, 500) g;
            INSERT INTO consents (subscriber_id, action, lists, source, created_at)
            SELECT id, 'unsubscribe', '{news}', 'link', now() - make_interval(hours => (id % 720)::int)
            FROM subscribers WHERE status = 'unsubscribed';
            INSERT INTO suppressions (email_hash, email, reason, created_at)
            SELECT email_hash, email, 'hard_bounce', now() - make_interval(mins => id::int) FROM subscribers
            WHERE status = 'bounced';
            """
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def best_of(rounds: int, call: Callable[[], Awaitable[Any]]) -> float:
    """The best of ``rounds`` timings of ``call``, in milliseconds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return 1000 * min(times)


async def timed_rows(url: str) -> dict[str, int]:
    """The rows the pages are timed on: the sending edition, a finished one, a reader with bounces."""
    conn = await asyncpg.connect(url)
    try:
        return {
            "sending": await conn.fetchval("SELECT id FROM editions WHERE status = 'sending'"),
            "done": await conn.fetchval("SELECT max(id) FROM editions WHERE status = 'done'"),
            "reader": await conn.fetchval("SELECT subscriber_id FROM bounce_events WHERE subscriber_id IS NOT NULL "
                                          "ORDER BY id LIMIT 1"),
        }
    finally:
        await conn.close()


async def time_functions(url: str, rounds: int, rows: dict[str, int]) -> list[tuple[str, float]]:
    """Each page's data function on one pooled connection, and the baseline."""
    db: Database = await open_database(url, pool_size=2, run_migrations=False)
    try:
        async with db.transaction() as conn:
            q = db.q
            calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                ("baseline: " + BASELINE, lambda: conn.fetchval(BASELINE)),
                ("load_dashboard", lambda: load_dashboard(conn, q)),
                ("list_editions", lambda: list_editions(conn, q, None)),
                ("load_edition (sending, all copies)", lambda: load_edition(conn, db, rows["sending"], None, 0)),
                ("load_edition (done, failed copies)", lambda: load_edition(conn, db, rows["done"], "failed", 0)),
                ("search_readers (everyone)", lambda: search_readers(conn, q, "", 0)),
                ("search_readers ('reader99')", lambda: search_readers(conn, q, "reader99", 0)),
                ("load_reader", lambda: load_reader(conn, q, rows["reader"])),
                ("load_taxonomy", lambda: load_taxonomy(conn, q)),
                ("recent_reports (unmatched)", lambda: recent_reports(conn, q, True, None)),
            ]
            return [(name, await best_of(rounds, call)) for name, call in calls]
    finally:
        await db.close()


async def sign_in(client: AsyncTestClient[Any], url: str) -> None:
    """An admin account, signed in through the real form."""
    db = await open_database(url, pool_size=1, run_migrations=False)
    try:
        async with db.transaction() as conn:
            await create_user(conn, db.q, "bench@example.org", "admin", PASSWORD)
    finally:
        await db.close()
    form = await client.get("/console/sign-in")
    token = re.search(r'name="csrf" value="([^"]*)"', form.text)
    assert token, "the sign-in form has a csrf field"
    answer = await client.post("/console/sign-in", data={"email": "bench@example.org", "password": PASSWORD,
                                                         "csrf": token[1], "next": "/console/"})
    assert answer.status_code == 303, answer.text


async def time_pages(url: str, rounds: int, rows: dict[str, int]) -> tuple[float, list[tuple[str, float]]]:
    """The first dashboard view (counts the finished days once), then every page best of ``rounds``."""
    settings = Settings(database_url=url, secret_keys=("bench-secret-key-0123456789abcdef",),
                        public_url="https://bench.example.org", log_level="warning", log_format="json")
    pages = [
        "/console/", "/console/editions", f"/console/editions/{rows['sending']}",
        f"/console/editions/{rows['done']}?status=failed", f"/console/editions/{rows['done']}/preview",
        "/console/subscribers", "/console/subscribers?q=reader99", f"/console/subscribers/{rows['reader']}",
        "/console/lists", "/console/suppressions", "/console/bounces", "/console/bounces?unmatched=true",
        "/console/progress",
    ]
    async with AsyncTestClient(create_app(settings), base_url="https://bench.example.org", timeout=120) as client:
        client.follow_redirects = False
        await sign_in(client, url)
        started = time.perf_counter()
        first = await client.get("/console/")
        first_ms = 1000 * (time.perf_counter() - started)
        assert first.status_code == 200, first.text

        def fetcher(path: str) -> Callable[[], Awaitable[None]]:
            async def fetch() -> None:
                response = await client.get(path)
                assert response.status_code == 200, (path, response.status_code, response.text[:500])
            return fetch

        return first_ms, [(path, await best_of(rounds, fetcher(path))) for path in pages]


def main() -> None:
    """Seed, time and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--editions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with bench_database() as url:
        started = time.perf_counter()
        asyncio.run(seed_console(url, args.readers, args.editions))
        copies = args.readers * args.editions
        print(f"seeded {args.readers:,} readers and {copies:,} copies in {time.perf_counter() - started:.1f} s")
        rows = asyncio.run(timed_rows(url))
        functions = asyncio.run(time_functions(url, args.rounds, rows))
        first, pages = asyncio.run(time_pages(url, args.rounds, rows))
    baseline = functions[0][1]
    print(f"\nbest of {args.rounds}, milliseconds; the baseline counts all {copies:,} copies")
    for name, ms in functions:
        print(f"  {name:<45} {ms:8.1f}  {ms / baseline:5.2f}× baseline")
    print(f"\n  GET /console/ first view (counts 29 days once) {first:8.1f}")
    for path, ms in pages:
        mark = "" if ms < TARGET_MS else f"  over {TARGET_MS} ms"
        print(f"  GET {path:<41} {ms:8.1f}  {ms / baseline:5.2f}× baseline{mark}")
    slowest = max(ms for _, ms in pages)
    print(f"\nslowest page {slowest:.1f} ms (target < {TARGET_MS} ms): {'met' if slowest < TARGET_MS else 'MISSED'}")


if __name__ == "__main__":
    main()
