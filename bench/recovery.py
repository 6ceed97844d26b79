"""Recovery benchmark: how long a SIGKILLed worker's leased copies wait before another worker sends them.

    .venv/bin/python -m bench.recovery [--recipients 3000] [--lease 10]

A ``letterbox worker`` process sends an edition into a real SMTP server on
loopback (aiosmtpd, a few milliseconds a copy); once it holds a leased batch it
is killed with SIGKILL and a second worker starts at once. The figure is the
time from the kill until every copy the dead worker held has been sent by the
second one, printed beside the lease it waited out (the baseline: a live
worker renews its leases every third of a lease; a dead one's run out).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import asyncpg

from bench.common import bench_database, seed
from tests.support.smtp import SmtpSink

SECRET = "bench-secret-key-0123456789abcdef"


def _worker(url: str, smtp_port: int, lease: int, var_dir: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env.update({
        "LETTERBOX_DATABASE_URL": url, "LETTERBOX_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "LETTERBOX_SECRET_KEYS": SECRET, "LETTERBOX_PUBLIC_URL": "https://news.example.org",
        "LETTERBOX_FROM": "News <news@example.org>", "LETTERBOX_LEASE_SECONDS": str(lease),
        "LETTERBOX_WORKER_BATCH_SIZE": "200", "LETTERBOX_VAR_DIR": var_dir, "LETTERBOX_LOG_LEVEL": "warning",
    })
    return subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _post_edition(conn: asyncpg.Connection) -> None:
    edition_id = await conn.fetchval(
        "INSERT INTO editions (idempotency_key, request_hash, subject, html, from_addr, list_ids, status) "
        "SELECT 'recovery', '\\x00', 'Recovery', '<p>Hello {{name}}</p>', 'News <news@example.org>', "
        "array_agg(id), 'queued' FROM lists WHERE slug = 'news' RETURNING id"
    )
    await conn.execute(
        "INSERT INTO deliveries (edition_id, subscriber_id, list_id) "
        "SELECT $1, s.subscriber_id, s.list_id FROM subscriptions s", edition_id,
    )


async def run(url: str, recipients: int, lease: int) -> None:
    await seed(url, recipients)
    conn = await asyncpg.connect(url)
    sink = SmtpSink()
    sink.delay = 0.005
    sink.start()
    var_dir = tempfile.mkdtemp(prefix="letterbox-recovery-")
    try:
        await _post_edition(conn)
        first = _worker(url, sink.port, lease, var_dir)
        await sink.wait_for(51, within=60)  # the first worker holds a leased batch and has sent some of it
        first.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait()
        held = [r["id"] for r in await conn.fetch("SELECT id FROM deliveries WHERE status = 'sending'")]
        second = _worker(url, sink.port, lease, var_dir)
        try:
            while True:  # polled: the figure is read off the database, as an operator would
                left = await conn.fetchval(
                    "SELECT count(*) FROM deliveries WHERE id = ANY($1::bigint[]) AND status <> 'sent'", held
                )
                if not left:
                    break
                await asyncio.sleep(0.05)
            recovered = time.monotonic() - killed_at
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=60)
        print(f"recipients: {recipients:,}  lease: {lease} s  copies held by the killed worker: {len(held)}")
        print(f"baseline  the lease a dead worker's copies wait out:   {lease:6.1f} s")
        print(f"recovery  kill -> every held copy sent by another:     {recovered:6.1f} s  (target: within 15 s)")
    finally:
        sink.stop()
        await conn.close()
        shutil.rmtree(var_dir, ignore_errors=True)


def main() -> None:
    """Parse the arguments and run the benchmark on a throwaway PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=3000)
    parser.add_argument("--lease", type=int, default=10, help="LETTERBOX_LEASE_SECONDS (the default is 10)")
    args = parser.parse_args()
    with bench_database("letterbox_recovery") as url:
        asyncio.run(run(url, args.recipients, args.lease))


if __name__ == "__main__":
    main()
