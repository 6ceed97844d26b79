"""Fan-out benchmark: POST an edition to N subscribers (default 1,000,000), beside a bare
``INSERT … SELECT`` of the same rows into the same table, measured in the same run.

    .venv/bin/python -m bench.fan_out [--subscribers 1000000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg
from litestar.testing import AsyncTestClient

from bench.common import bench_database, seed
from service.app import create_app
from service.settings import Settings

KEY = "bench-bootstrap-key-0123456789"
BARE = """
INSERT INTO deliveries (edition_id, subscriber_id, list_id)
SELECT $1, sub.subscriber_id, sub.list_id
FROM subscriptions sub
WHERE sub.list_id = $2
"""


async def _reset(conn: asyncpg.Connection) -> None:
    await conn.execute("TRUNCATE deliveries CASCADE")
    await conn.execute("VACUUM ANALYZE deliveries")


async def bare(url: str, count: int) -> float:
    """Seconds for the bare statement, into a fresh deliveries table."""
    conn = await asyncpg.connect(url)
    try:
        await _reset(conn)
        edition_id = await conn.fetchval(
            "INSERT INTO editions (idempotency_key, request_hash, subject, html, from_addr, list_ids, status) "
            "VALUES ('bare-' || gen_random_uuid(), '', 'bare', 'x', 'a@b.c', '{}', 'paused') RETURNING id"
        )
        list_id = await conn.fetchval("SELECT id FROM lists WHERE slug = 'news'")
        started = time.perf_counter()
        result = await conn.execute(BARE, edition_id, list_id)
        elapsed = time.perf_counter() - started
        assert result == f"INSERT 0 {count}", result
        return elapsed
    finally:
        await conn.close()


async def service(url: str, count: int, key: str) -> float:
    """Seconds for POST /v1/editions through the app, into a fresh deliveries table."""
    conn = await asyncpg.connect(url)
    await _reset(conn)
    await conn.close()
    settings = Settings(
        database_url=url,
        secret_keys=("bench-secret-key-0123456789abcdef",),
        bootstrap_api_key=KEY,
        log_level="warning",
        log_format="json",
    )
    async with AsyncTestClient(create_app(settings), timeout=120) as client:
        started = time.perf_counter()
        response = await client.post(
            "/v1/editions",
            json={"subject": "Fan-out", "html": "<p>Hi {{name}}</p>", "lists": ["news"]},
            headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": key},
        )
        elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.text
    assert response.json()["recipients"] == count, response.text
    conn = await asyncpg.connect(url)
    await conn.execute("UPDATE editions SET status = 'paused'")  # keep any worker away
    await conn.close()
    return elapsed


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with bench_database() as url:
        started = time.perf_counter()
        asyncio.run(seed(url, args.subscribers))
        print(f"seeded {args.subscribers:,} subscribers in {time.perf_counter() - started:.1f} s")
        bare_times, post_times = [], []
        for round_ in range(args.rounds):
            bare_times.append(asyncio.run(bare(url, args.subscribers)))
            post_times.append(asyncio.run(service(url, args.subscribers, f"fan-out-{round_}")))
        best_bare, best_post = min(bare_times), min(post_times)
        print(f"bare INSERT … SELECT          {best_bare:>7.2f} s  (best of {args.rounds})")
        print(f"POST /v1/editions (fan-out)   {best_post:>7.2f} s  = {best_post / best_bare:.2f}× the bare statement")


if __name__ == "__main__":
    main()
