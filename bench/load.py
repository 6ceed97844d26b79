"""Load benchmark: public traffic while an edition sends.

While an edition of N (default 20,000) copies sends, C (default 200) concurrent
clients post sign-ups to the public form and RFC 8058 one-click unsubscribes
for D seconds (default 30). Printed beside an idle run measured in the same
run: the same edition with no public traffic, and the same traffic with no
edition sending. Reports error responses (must be none), p50/p99 latency and
the send rate. The API (`serve --no-worker`) and a worker run as two processes,
as in production; the load comes over real HTTP.

    .venv/bin/python -m bench.load [--recipients 20000] [--clients 200] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

import asyncpg
import httpx

from bench.common import bench_database, seed
from bench.smtp_sink import Sink
from service.tokens import Purpose, TokenSigner

SECRET = "bench-secret-key-0123456789abcdef"
KEY = "bench-bootstrap-key-0123456789"
BYSTANDERS = 20_000  # people on another list, who press one-click unsubscribe during the load


def _env(url: str, sink_port: int, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env.update({
        "LETTERBOX_DATABASE_URL": url, "LETTERBOX_SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
        "LETTERBOX_SECRET_KEYS": SECRET, "LETTERBOX_BOOTSTRAP_API_KEY": KEY, "LETTERBOX_PORT": str(port),
        "LETTERBOX_PUBLIC_URL": "https://news.example.org", "LETTERBOX_FROM": "news@example.org",
        "LETTERBOX_LOG_LEVEL": "warning", "LETTERBOX_LOG_FORMAT": "json", "LETTERBOX_DB_POOL_SIZE": "20",
        # The load comes from one address; each simulated client sends its own X-Forwarded-For, and the
        # per-client limit is raised because 200 clients hammering for 30 s is the point here.
        "LETTERBOX_SUBSCRIBE_LIMIT_PER_CLIENT": "100000", "LETTERBOX_TRUSTED_PROXIES": "127.0.0.1",
    })
    return env


@contextmanager
def letterbox(url: str, sink: Sink, port: int) -> Iterator[None]:
    """The API and one worker, as two processes."""
    env = _env(url, sink.port, port)
    processes = [
        subprocess.Popen([sys.executable, "-m", "service.cli", command, *extra], env=env)
        for command, extra in (("serve", ["--no-worker"]), ("worker", []))
    ]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)


async def add_bystanders(url: str) -> list[int]:
    """People confirmed on the training list only, whose unsubscribe links the load presses."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "INSERT INTO subscribers (email, name, status, confirmed_at) "
            "SELECT 'bystander' || g || '@example.org', 'B', 'active', now() FROM generate_series(1, $1) g "
            "RETURNING id", BYSTANDERS,
        )
        ids = [r["id"] for r in rows]
        await conn.execute(
            "INSERT INTO subscriptions (list_id, subscriber_id, status) "
            "SELECT (SELECT id FROM lists WHERE slug = 'training'), id, 'confirmed' FROM unnest($1::bigint[]) id", ids,
        )
        return ids
    finally:
        await conn.close()


async def edition(base: str, count: int, key: str) -> float:
    """POST an edition and wait until it is done (confirmation mails share the sink, so ask the API); msg/s."""
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        started = time.perf_counter()
        response = await client.post(
            "/v1/editions", json={"subject": "Briefing", "html": "<p>Dear {{name}}</p>" * 200, "lists": ["news"]},
            headers={**auth, "Idempotency-Key": key},
        )
        assert response.status_code == 202, response.text
        edition_id = response.json()["id"]
        while True:
            shown = (await client.get(f"/v1/editions/{edition_id}", headers=auth)).json()
            if shown["status"] == "done":
                assert shown["sent"] == count, shown
                return count / (time.perf_counter() - started)
            await asyncio.sleep(0.05)


class _Connection:
    """A minimal keep-alive HTTP/1.1 client for one simulated user.

    httpx spends milliseconds of CPU per request with hundreds of connections open;
    on a 2-core machine the load generator, not the service, became the bottleneck.
    """

    def __init__(self, port: int, forwarded_for: str) -> None:
        self.port = port
        self.forwarded_for = forwarded_for
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        """POST a form body; return the status code (the body is read and dropped)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: {self.forwarded_for}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        await self.reader.readexactly(int(length[1]) if length else 0)
        return status

    def close(self) -> None:
        """Hang up."""
        if self.writer is not None:
            self.writer.close()


async def traffic(base: str, clients: int, seconds: float, tokens: list[str]) -> tuple[list[float], dict[int, int]]:
    """``clients`` concurrent users signing up and unsubscribing for ``seconds``: latencies and status counts."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient() as client:
        page = (await client.get(f"{base}/subscribe")).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None, "no CSRF field on the form"
    port = int(base.rsplit(":", 1)[1])
    deadline = time.monotonic() + seconds

    async def user(number: int) -> None:
        connection = _Connection(port, f"10.{number // 250}.{number % 250}.{random.randint(1, 250)}")
        sent = 0
        try:
            while time.monotonic() < deadline:
                sent += 1
                started = time.perf_counter()
                if sent % 2:
                    form = {"csrf": csrf[1], "email": f"load-{number}-{sent}@example.org", "name": "Load",
                            "lists": "training", "website": ""}
                    status = await connection.post("/subscribe", urlencode(form).encode())
                else:
                    one_click = b"List-Unsubscribe=One-Click"
                    status = await connection.post(f"/unsubscribe/{random.choice(tokens)}", one_click)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            connection.close()

    await asyncio.gather(*(user(n) for n in range(clients)))
    return latencies, statuses


def _summary(latencies: list[float], statuses: dict[int, int], seconds: float) -> str:
    cuts = statistics.quantiles(latencies, n=100)
    errors = sum(n for code, n in statuses.items() if code >= 400)
    return (f"{len(latencies) / seconds:>7.0f} req/s  p50 {cuts[49] * 1000:>6.1f} ms  p99 {cuts[98] * 1000:>7.1f} ms  "
            f"errors {errors}  statuses {dict(sorted(statuses.items()))}")


async def run(url: str, port: int, args: argparse.Namespace) -> None:
    """Idle edition, idle traffic, then both at once."""
    ids = await add_bystanders(url)
    signer = TokenSigner([SECRET])
    conn = await asyncpg.connect(url)
    training = await conn.fetchval("SELECT id FROM lists WHERE slug = 'training'")
    await conn.close()
    tokens = [signer.sign(Purpose.UNSUBSCRIBE, i, training, None) for i in ids]
    base = f"http://127.0.0.1:{port}"
    idle_rate = await edition(base, args.recipients, "idle")
    idle_lat, idle_status = await traffic(base, args.clients, args.seconds / 3, tokens)
    sending = asyncio.create_task(edition(base, args.recipients, "loaded"))
    load_lat, load_status = await traffic(base, args.clients, args.seconds, tokens)
    loaded_rate = await sending
    print(f"edition of {args.recipients:,}, idle           {idle_rate:>7.0f} msg/s")
    print(f"edition of {args.recipients:,}, under load     {loaded_rate:>7.0f} msg/s  (the load ran for "
          f"{args.seconds:.0f} s of it)")
    print(f"public traffic, no edition    {_summary(idle_lat, idle_status, args.seconds / 3)}")
    print(f"public traffic, edition on    {_summary(load_lat, load_status, args.seconds)}")


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    sink = Sink()
    port = 18000 + os.getpid() % 1000
    try:
        with bench_database() as url:
            asyncio.run(seed(url, args.recipients))
            with letterbox(url, sink, port):
                asyncio.run(run(url, port, args))
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
