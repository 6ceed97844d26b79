"""Console benchmark (draft): seeding."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.common import seed

READERS = 100_000
EDITIONS = 10


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
