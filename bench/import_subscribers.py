"""Benchmark: import 100,000 subscribers through the real app, beside a bare COPY of the same rows.

    .venv/bin/python -m bench.import_subscribers [--rows 100000] [--format csv|ndjson] [--rounds 3] [--steps]

Starts an embedded PostgreSQL in a temporary folder (or uses
LETTERBOX_BENCH_DATABASE_URL, a server where the user may CREATE DATABASE),
creates a scratch database, runs Letterbox under uvicorn on a free port and
streams the generated file to ``POST /v1/subscribers/import`` with httpx in
64 KiB chunks, twice: new people, then the same people again (a re-import).
The baseline is ``COPY`` of the same CSV into a plain table with no indexes,
constraints or checks: the floor for getting these bytes into PostgreSQL at
all. Each round runs in a new database (the same server; the first round's
server is new too, and creates the WAL segments it fills): the COPY, then the
two imports, each once. The target must be met by each import of every round,
against its own round's COPY; the medians are printed beside (one run on this
machine's two vCPUs varied by 15 %, the COPY by half).
The target (issue 14) is 3 s for 100,000 rows, and at most 25 times the bare
COPY of the same run, for each import.  Each figure also shows the CPU
seconds it took, in this process (the app and the client) and in the
database's backends, which other load on the machine changes far less than
the elapsed time.

``--steps`` runs the importer itself instead (no HTTP, no baseline), new
people then a re-import, and prints what each statement it sends cost:
PostgreSQL's CPU, the elapsed time and the WAL written (for the COPY, the
elapsed time is the body's reading and checking, which the COPY keeps pace with).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.app import create_app
from service.db.embedded import EmbeddedPostgres
from service.db.pool import open_database
from service.settings import Settings
from service.subscribers.demo import AGENCIES, LISTS, ROLES, load_demo
from service.subscribers.importer import FORMATS, import_stream

TARGET_SECONDS = 3.0
TARGET_RATIO = 25.0
KEY = "bench-bootstrap-key-0123456789"
CHUNK = 64 * 1024
T = TypeVar("T")


@contextmanager
def admin_dsn() -> Iterator[str]:
    """A server to benchmark on: the one named by the environment, or a throwaway embedded one."""
    given = os.environ.get("LETTERBOX_BENCH_DATABASE_URL")
    if given:
        yield given
        return
    root = Path(tempfile.mkdtemp(prefix="letterbox-bench-"))
    root.chmod(0o755)  # the unprivileged server user must reach it when we run as root
    server = EmbeddedPostgres(root / "postgres")
    server.start()
    try:
        yield server.dsn()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def with_database(dsn: str, name: str) -> str:
    """The same server URL pointing at another database."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def generate(count: int, seed: int = 1) -> list[dict[str, object]]:
    """``count`` plausible rows: unique addresses, names, taxonomy, one to three lists, an attribute."""
    rng = random.Random(seed)
    agencies = [a[0] for a in AGENCIES]
    roles = [r[0] for r in ROLES]
    lists = [x[0] for x in LISTS]
    rows: list[dict[str, object]] = []
    for i in range(count):
        rows.append({
            "email": f"reader.{i}@{rng.choice(['council', 'nhs', 'school', 'police', 'charity'])}{i % 97}.example.org",
            "name": f"Reader {i}",
            "agency": rng.choice(agencies),
            "role": rng.choice(roles),
            "lists": rng.sample(lists, rng.randint(1, 3)),
            "attributes": {"team": f"team-{i % 40}"},
        })
    return rows


def as_csv(rows: list[dict[str, object]]) -> bytes:
    """The rows as the importer's CSV (lists joined with ';', attributes as a JSON cell)."""
    out = io.StringIO()
    out.write("email,name,agency,role,lists,attributes\n")
    for r in rows:
        attributes = json.dumps(r["attributes"]).replace('"', '""')
        lists = ";".join(r["lists"])  # type: ignore[arg-type]
        out.write(f'{r["email"]},{r["name"]},{r["agency"]},{r["role"]},{lists},"{attributes}"\n')
    return out.getvalue().encode()


def as_ndjson(rows: list[dict[str, object]]) -> bytes:
    """The rows as NDJSON."""
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


class Body(NamedTuple):
    """The generated rows as the import's body, and as the CSV the baseline COPY reads."""

    csv: bytes
    content: bytes
    media_type: str


def body_of(count: int, fmt: str) -> Body:
    """``count`` generated rows (:func:`generate`) in ``fmt``, made once for every round."""
    rows = generate(count)
    csv_body = as_csv(rows)
    if fmt == "csv":
        return Body(csv_body, csv_body, "text/csv")
    return Body(csv_body, as_ndjson(rows), "application/x-ndjson")


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    """The body in 64 KiB pieces, as a client streaming a file sends it."""
    for start in range(0, len(body), CHUNK):
        yield body[start:start + CHUNK]


class Cost(NamedTuple):
    """What one run took: elapsed seconds, and CPU seconds here and in the database's backends."""

    seconds: float
    app_cpu: float
    db_cpu: float

    def __str__(self) -> str:
        return f"{self.seconds:6.2f} s  (cpu: app {self.app_cpu:.2f} s, postgres {self.db_cpu:.2f} s)"


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system) a local process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def backends_cpu(monitor: asyncpg.Connection) -> float:
    """CPU seconds used so far by the other backends connected to the monitor's database."""
    pids = await monitor.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                               "AND pid <> pg_backend_pid()")
    total = 0.0
    for row in pids:
        try:
            total += process_cpu(row["pid"])
        except (FileNotFoundError, ProcessLookupError):  # a backend that ended meanwhile
            continue
    return total


async def baseline_copy(dsn: str, csv_body: bytes) -> Cost:
    """A bare COPY of the same CSV into an unindexed scratch table."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TEMP TABLE scratch (email text, name text, agency text, role text, "
                           "lists text, attributes jsonb)")
        backend = conn.get_server_pid()
        db_cpu, app_cpu, started = process_cpu(backend), time.process_time(), time.perf_counter()
        await conn.copy_to_table("scratch", source=io.BytesIO(csv_body), format="csv", header=True)
        return Cost(time.perf_counter() - started, time.process_time() - app_cpu, process_cpu(backend) - db_cpu)
    finally:
        await conn.close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def post_import(port: int, body: bytes, media_type: str,
                      monitor: asyncpg.Connection) -> tuple[Cost, dict[str, Any]]:
    """What streaming ``body`` to the import endpoint took, and its answer."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
        db_cpu, app_cpu, started = await backends_cpu(monitor), time.process_time(), time.perf_counter()
        response = await client.post("/v1/subscribers/import", content=chunks(body),
                                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": media_type})
        cost = Cost(time.perf_counter() - started, time.process_time() - app_cpu,
                    await backends_cpu(monitor) - db_cpu)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return cost, result


async def _serve_and_import(dsn: str, var_dir: str, body: bytes,
                            media_type: str) -> tuple[Cost, dict[str, Any], Cost, dict[str, Any]]:
    """Run Letterbox under uvicorn and import ``body`` twice: new people, then a re-import."""
    settings = Settings(database_url=dsn, secret_keys=("bench-secret-key-0123456789",), bootstrap_api_key=KEY,
                        var_dir=var_dir, log_level="warning", log_format="json")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    serving = asyncio.create_task(server.serve())
    for _ in range(600):  # up to 30 s to start
        if server.started or serving.done():
            break
        await asyncio.sleep(0.05)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    monitor = await asyncpg.connect(dsn)
    try:
        first_cost, first = await post_import(port, body, media_type, monitor)
        second_cost, second = await post_import(port, body, media_type, monitor)
    finally:
        await monitor.close()
        server.should_exit = True
        await serving
    return first_cost, first, second_cost, second


class Round(NamedTuple):
    """One round's figures: the bare COPY, then each import with its answer."""

    copy: Cost
    first: Cost
    second: Cost
    created: int
    updated: int
    invalid: int


async def run(dsn: str, body: Body) -> Round:
    """One round on the new database ``dsn``: the bare COPY, the new people, the re-import; printed."""
    db = await open_database(dsn, pool_size=2)
    await load_demo(db)
    await db.close()

    copy = await baseline_copy(dsn, body.csv)
    with tempfile.TemporaryDirectory(prefix="letterbox-bench-var-") as var_dir:
        first_cost, first, second_cost, second = await _serve_and_import(dsn, var_dir, body.content,
                                                                         body.media_type)
    print(f"  bare COPY {copy}   new people {first_cost} {first_cost.seconds / copy.seconds:5.1f}x   "
          f"re-import {second_cost} {second_cost.seconds / copy.seconds:5.1f}x", flush=True)
    return Round(copy, first_cost, second_cost, first["created"], second["updated"], first["invalid_total"])


def report(rounds: list[Round], count: int, fmt: str, size: float) -> bool:
    """Print the medians of the rounds against the target; return whether it was met."""
    copy = statistics.median(r.copy.seconds for r in rounds)
    first = statistics.median(r.first.seconds for r in rounds)
    second = statistics.median(r.second.seconds for r in rounds)

    def cpu(costs: list[Cost]) -> str:
        return (f"cpu: app {statistics.median(c.app_cpu for c in costs):.2f} s, "
                f"postgres {statistics.median(c.db_cpu for c in costs):.2f} s")

    print(f"rows: {count:,}  format: {fmt}  body: {size:.1f} MiB  cpus: {os.cpu_count()}  "
          f"load: {os.getloadavg()[0]:.1f}  medians of {len(rounds)} rounds, each in a new database")
    print(f"baseline  bare COPY of the same rows, no indexes:  {copy:6.2f} s  ({cpu([r.copy for r in rounds])})")
    print(f"import    new people (created={rounds[0].created:,}):        {first:6.2f} s  "
          f"({cpu([r.first for r in rounds])})  {first / copy:.1f}x COPY")
    print(f"re-import same people (updated={rounds[0].updated:,}):     {second:6.2f} s  "
          f"({cpu([r.second for r in rounds])})  {second / copy:.1f}x COPY")
    invalid = max(r.invalid for r in rounds)
    met = [r for r in rounds
           if max(r.first.seconds, r.second.seconds) <= min(TARGET_SECONDS, TARGET_RATIO * r.copy.seconds)]
    print(f"target    <= {TARGET_SECONDS:.0f} s and <= {TARGET_RATIO:.0f}x its round's COPY, each import: "
          f"{'met' if len(met) == len(rounds) and not invalid else 'NOT MET'} in {len(met)} of {len(rounds)} rounds "
          f"(invalid rows: {invalid})")
    return len(met) == len(rounds) and not invalid


class Timed:
    """A connection that notes, for each statement sent through it, PostgreSQL's CPU, the time and the WAL."""

    def __init__(self, conn: asyncpg.Connection, names: dict[str, str]) -> None:
        self._conn = conn
        self._names = names
        self.steps: list[tuple[str, float, float, int]] = []
        """(query name, PostgreSQL CPU seconds, elapsed seconds, WAL bytes) per statement, in order."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def _note(self, query: str, call: Awaitable[Any]) -> Any:
        backend = self._conn.get_server_pid()
        wal = await self._conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        cpu, started = process_cpu(backend), time.perf_counter()
        result = await call
        elapsed, used = time.perf_counter() - started, process_cpu(backend) - cpu
        written = await self._conn.fetchval("SELECT pg_current_wal_insert_lsn() - $1::pg_lsn", wal)
        self.steps.append((self._names.get(query, query), used, elapsed, int(written)))
        return result

    async def execute(self, query: str, *args: Any) -> Any:
        """:meth:`asyncpg.Connection.execute`, noted."""
        return await self._note(query, self._conn.execute(query, *args))

    async def fetch(self, query: str, *args: Any) -> Any:
        """:meth:`asyncpg.Connection.fetch`, noted."""
        return await self._note(query, self._conn.fetch(query, *args))

    async def fetchval(self, query: str, *args: Any) -> Any:
        """:meth:`asyncpg.Connection.fetchval`, noted."""
        return await self._note(query, self._conn.fetchval(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> Any:
        """:meth:`asyncpg.Connection.fetchrow`, noted."""
        return await self._note(query, self._conn.fetchrow(query, *args))

    async def prepare(self, query: str) -> Any:
        """:meth:`asyncpg.Connection.prepare`, its runs noted."""
        statement = await self._conn.prepare(query)
        note = self._note

        class Noted:
            async def fetchrow(self, *args: Any) -> Any:
                return await note(query, statement.fetchrow(*args))

        return Noted()

    async def commit(self, transaction: asyncpg.transaction.Transaction) -> None:
        """Commit ``transaction``, noted: the time it takes is mostly flushing the WAL to disk."""
        await self._note("COMMIT", transaction.commit())

    async def copy_to_table(self, table_name: str, **options: Any) -> Any:
        """:meth:`asyncpg.Connection.copy_to_table`, noted."""
        return await self._note(f"COPY into {table_name}", self._conn.copy_to_table(table_name, **options))


async def run_steps(dsn: str, body: Body, count: int, fmt: str) -> bool:
    """Import the rows twice through the importer itself and print each statement's cost."""
    db = await open_database(dsn, pool_size=2)
    try:
        await load_demo(db)
        names = {sql: name for name, sql in db.q.items()}
        print(f"rows: {count:,}  format: {fmt}  cpus: {os.cpu_count()}  load: {os.getloadavg()[0]:.1f}")
        for label in ("new people", "re-import"):
            async with db.pool.acquire() as proxy:
                timed = Timed(cast(asyncpg.Connection, proxy), names)
                transaction = proxy.transaction()
                await transaction.start()
                try:
                    result = await import_stream(cast(asyncpg.Connection, timed), db.q, FORMATS[body.media_type],
                                                 chunks(body.content))
                except BaseException:
                    await transaction.rollback()
                    raise
                await timed.commit(transaction)
            print(f"{label}: created {result.created:,}, updated {result.updated:,}, skipped {result.skipped:,}")
            for name, cpu, seconds, wal in timed.steps:
                print(f"  {name:26s} postgres {cpu:5.2f} s  elapsed {seconds:5.2f} s  WAL {wal / 1e6:6.1f} MB")
    finally:
        await db.close()
    return True


def main() -> int:
    """Parse arguments, provide scratch databases, run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", choices=("csv", "ndjson"), default="csv")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each in a new database (medians reported)")
    parser.add_argument("--steps", action="store_true", help="each statement's cost instead of the HTTP figures")
    args = parser.parse_args()
    with admin_dsn() as admin:

        async def scratch(measure: Callable[[str], Awaitable[T]]) -> T:
            name = f"letterbox_bench_{uuid.uuid4().hex[:8]}"
            conn = await asyncpg.connect(admin)
            await conn.execute(f'CREATE DATABASE "{name}"')
            try:
                return await measure(with_database(admin, name))
            finally:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.close()

        async def rounds() -> bool:
            body = body_of(args.rows, args.format)
            if args.steps:
                return await scratch(lambda dsn: run_steps(dsn, body, args.rows, args.format))
            done = [await scratch(lambda dsn: run(dsn, body)) for _ in range(args.rounds)]
            return report(done, args.rows, args.format, len(body.content) / 1024 / 1024)

        return 0 if asyncio.run(rounds()) else 1


if __name__ == "__main__":
    sys.exit(main())
