"""Report benchmark: GET /v1/editions/{id}/report over N copies (default 1,000,000), beside a
hand-written plain ``GROUP BY agency`` over the same rows, measured in the same run.

    .venv/bin/python -m bench.report [--copies 1000000] [--rounds 3]

The copies are seeded set-wise: mostly sent, some failed and skipped, 1 % with a counted hard
bounce, 0.1 % with a complaint, 0.5 % unsubscribed, 0.2 % erased (subscriber_id NULL).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg
from litestar.testing import AsyncTestClient

from bench.common import bench_database, seed
from service.app import create_app
from service.db.queries import load_queries
from service.db.sql_files import QUERIES_DIR
from service.settings import Settings

KEY = "bench-bootstrap-key-0123456789"
PLAIN = """
SELECT s.agency, count(*) AS recipients
FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id
WHERE d.edition_id = $1
GROUP BY s.agency
"""


async def seed_copies(url: str) -> int:
    """One edition with a copy for every reader, in a spread of states; returns its id."""
    conn = await asyncpg.connect(url)
    try:
        edition_id: int = await conn.fetchval(
            "INSERT INTO editions (idempotency_key, request_hash, subject, html, from_addr, list_ids, status) "
            "VALUES ('report-bench', '', 'Report', '<p>x</p>', 'a@example.org', '{}', 'done') RETURNING id"
        )
        await conn.execute(
            """
            INSERT INTO deliveries (edition_id, subscriber_id, list_id, status, sent_at)
            SELECT $1, s.id, NULL,
                   CASE WHEN s.id % 50 = 0 THEN 'failed' WHEN s.id % 70 = 0 THEN 'skipped' ELSE 'sent' END, now()
            FROM subscribers s
            """,
            edition_id,
        )
        await conn.execute(
            """
            INSERT INTO bounce_events (subscriber_id, delivery_id, edition_id, email_hash, kind, source, counted)
            SELECT d.subscriber_id, d.id, $1, '\\x00'::bytea,
                   CASE WHEN d.subscriber_id % 1000 = 7 THEN 'complaint' ELSE 'hard' END, 'bench',
                   d.subscriber_id % 1000 <> 7
            FROM deliveries d WHERE d.edition_id = $1 AND (d.subscriber_id % 100 = 3 OR d.subscriber_id % 1000 = 7)
            """,
            edition_id,
        )
        await conn.execute(
            "INSERT INTO edition_unsubscribes (edition_id, subscriber_id) "
            "SELECT $1, id FROM subscribers WHERE id % 200 = 11",
            edition_id,
        )
        # Erased readers: their copies stay, unlinked, as erasure leaves them (erasure-scrub-deliveries).
        await conn.execute(
            "UPDATE deliveries SET subscriber_id = NULL WHERE edition_id = $1 AND subscriber_id % 500 = 13", edition_id
        )
        await conn.execute("VACUUM ANALYZE")
        return edition_id
    finally:
        await conn.close()


async def time_queries(url: str, edition_id: int, rounds: int) -> tuple[float, float]:
    """Best seconds of the report's query and of the plain GROUP BY, alternated in one connection."""
    report_sql = load_queries(QUERIES_DIR)["edition-report"]
    conn = await asyncpg.connect(url)
    try:
        report_times, plain_times = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            await conn.fetch(PLAIN, edition_id)
            plain_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            await conn.fetch(report_sql, edition_id)
            report_times.append(time.perf_counter() - started)
        return min(report_times), min(plain_times)
    finally:
        await conn.close()


async def time_endpoint(url: str, edition_id: int, rounds: int, copies: int) -> float:
    """Best seconds of GET /v1/editions/{id}/report through the app."""
    settings = Settings(database_url=url, secret_keys=("bench-secret-key-0123456789abcdef",), bootstrap_api_key=KEY,
                        log_level="warning", log_format="json")
    times = []
    async with AsyncTestClient(create_app(settings), timeout=120) as client:
        for _ in range(rounds):
            started = time.perf_counter()
            response = await client.get(f"/v1/editions/{edition_id}/report", headers={"Authorization": f"Bearer {KEY}"})
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            assert sum(row["recipients"] for row in response.json()["by_agency"]) == copies
    return min(times)


def main() -> None:
    """Seed, run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with bench_database() as url:
        started = time.perf_counter()
        asyncio.run(seed(url, args.copies))
        edition_id = asyncio.run(seed_copies(url))
        print(f"seeded {args.copies:,} readers and copies in {time.perf_counter() - started:.1f} s")
        report, plain = asyncio.run(time_queries(url, edition_id, args.rounds))
        endpoint = asyncio.run(time_endpoint(url, edition_id, args.rounds, args.copies))
        print(f"plain GROUP BY agency (recipients only)  {plain:>7.3f} s  (best of {args.rounds})")
        print(f"report query (agency and role, 7 counts) {report:>7.3f} s  = {report / plain:.2f}× the plain one")
        print(f"GET /v1/editions/{{id}}/report            {endpoint:>7.3f} s  = {endpoint / plain:.2f}× the plain one")


if __name__ == "__main__":
    main()
