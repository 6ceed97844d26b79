"""HTTP benchmark: Letterbox's public endpoints beside a bare Litestar + asyncpg app, under wrk.

In one run, against the same PostgreSQL, with wrk (Debian's ``wrk``) at 32
connections for a few seconds per row: Letterbox (``serve --no-worker``, the
production log level and format) with ``LETTERBOX_WEB_WORKERS=1`` and ``=2``,
and beside each the bare app in as many processes (uvicorn, same options, each
process on its own ``SO_REUSEPORT`` socket as ``serve``'s are):
``POST /bare`` decodes a msgspec body and runs one INSERT, ``GET /bare``
returns JSON and touches nothing; it runs before and after Letterbox and its
figure is the mean of the two.  Public POSTs are compared with the bare POST,
public pages and ``/healthz`` with the bare GET.  The bare app runs on uvicorn's
own httptools protocol; Letterbox on its one-write-per-answer one
(service/http_protocol.py), so after each table the bare app runs once more on
that protocol, and a line says what it gives a bare app and where Letterbox
stands against that.

Every sign-up uses a new address, every one-click unsubscribe and every
confirmation a token of its own, signed before the run.  Non-2xx answers are
counted and must be 0.  Each cell also gives the CPU a request cost the
server's processes and PostgreSQL (user + system, from /proc), and the last
column the baseline's CPU per request over ours: the rate swings with whatever
else the machine runs, the CPU per request much less.

    .venv/bin/python -m bench.http [--seconds 5] [--connections 32] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import html
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import httpx
import msgspec
from litestar import Litestar, get, post

from bench.common import bench_database
from service.serving import HTTP_LOOP, HTTP_PARSER, HTTP_PROTOCOL, listening_socket
from service.settings import Settings
from service.tokens import Purpose, TokenSigner

SECRET = "bench-secret-key-0123456789abcdef"
HERE = Path(__file__).resolve().parent
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_BARE_URL = "BENCH_BARE_DATABASE_URL"
WRK_THREADS = 2


# -- the bare app ------------------------------------------------------------------------------------------


class Signup(msgspec.Struct, forbid_unknown_fields=True):
    """The bare POST's body."""

    email: str
    name: str


async def _no_reset(_: asyncpg.Connection) -> None:
    """Keep a released connection as it is (the bare app leaves no session state)."""


def bare_app() -> Litestar:
    """Litestar + asyncpg and nothing else: what the hardware and the framework allow (uvicorn --factory)."""
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        # No reset round trip on release, as Letterbox's pool (service/db/pool.py): the baseline is the best
        # a minimal app gets from the same stack.
        pools.append(await asyncpg.create_pool(os.environ[_BARE_URL], min_size=1, max_size=10, reset=_no_reset))
        try:
            yield
        finally:
            await pools[0].close()

    @post("/bare")
    async def bare_post(data: Signup) -> dict[str, int]:
        row_id: int = await pools[0].fetchval(
            "INSERT INTO bench_bare (email, name) VALUES ($1, $2) RETURNING id", data.email, data.name
        )
        return {"id": row_id}

    @get("/bare", sync_to_thread=False)
    def bare_get() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([bare_post, bare_get], lifespan=[lifespan], logging_config=None, openapi_config=None)


# -- processes ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer 200 within 60 s")


@contextmanager
def _running(command: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[int]:
    """Run ``command`` until the block ends; yield its process id once ``ready_url`` answers 200."""
    with log.open("ab") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)
    try:
        _wait(ready_url, process)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def letterbox(url: str, port: int, workers: int, var_dir: Path) -> AbstractContextManager[int]:
    """``serve --no-worker`` with ``workers`` HTTP processes, logging JSON at info as in production."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env.update({
        "LETTERBOX_DATABASE_URL": url, "LETTERBOX_SECRET_KEYS": SECRET, "LETTERBOX_PORT": str(port),
        "LETTERBOX_PUBLIC_URL": "https://news.example.org", "LETTERBOX_FROM": "news@example.org",
        "LETTERBOX_VAR_DIR": str(var_dir), "LETTERBOX_LOG_LEVEL": "info", "LETTERBOX_LOG_FORMAT": "json",
        "LETTERBOX_WEB_WORKERS": str(workers),
        # One wrk client signs up thousands of times a second: the per-client limit would stop it at once.
        "LETTERBOX_SUBSCRIBE_LIMIT_PER_CLIENT": "1000000000",
    })
    command = [sys.executable, "-m", "service.cli", "serve", "--no-worker"]
    return _running(command, env, f"http://127.0.0.1:{port}/readyz", var_dir / "letterbox.log")


def bare(url: str, port: int, workers: int, var_dir: Path, *, one_write: bool = False) -> AbstractContextManager[int]:
    """The bare app in ``workers`` processes laid out as ``serve`` lays out its own (see :func:`serve_bare`);
    ``one_write``: on Letterbox's HTTP protocol rather than uvicorn's."""
    env = {**os.environ, _BARE_URL: url}
    command = [sys.executable, "-m", "bench.http", "--serve-bare", str(port), "--workers", str(workers)]
    if one_write:
        command.append("--one-write")
    return _running(command, env, f"http://127.0.0.1:{port}/bare", var_dir / "bare.log")


def serve_bare(port: int, workers: int, *, one_write: bool = False) -> None:
    """Run the bare app under uvicorn with Letterbox's options, in ``workers`` processes on one port.

    Not ``uvicorn --workers``: its shared socket leaves Nagle on (each answer then waits 40 ms for a
    delayed ACK). Each process listens on a socket of its own, as ``serve``'s web processes do.
    """
    processes = [multiprocessing.get_context("spawn").Process(target=_bare_process, args=(port, one_write))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            process.terminate()
            process.join()


def _bare_process(port: int, one_write: bool) -> None:
    import uvicorn

    config = uvicorn.Config(bare_app(), log_config=None, access_log=False, server_header=False, lifespan="on",
                            loop=HTTP_LOOP, http=HTTP_PROTOCOL if one_write else HTTP_PARSER)
    uvicorn.Server(config).run(sockets=[listening_socket(Settings(port=port))])


# -- wrk ---------------------------------------------------------------------------------------------------


class Result(msgspec.Struct, frozen=True):
    """One wrk run, and the CPU it cost the server's processes and PostgreSQL's per request."""

    rate: float
    p99_ms: float
    errors: int
    requests: int
    app_us: float = 0.0
    db_us: float = 0.0

    def cell(self) -> str:
        """``1,234 req/s, p99 12 ms, CPU 80 + 20 µs`` (and the errors, if any)."""
        errors = f", {self.errors} errors" if self.errors else ""
        return (f"{self.rate:,.0f} req/s, p99 {self.p99_ms:,.1f} ms, CPU {self.app_us:,.0f} + {self.db_us:,.0f} µs"
                f"{errors}")


def mean(first: Result, second: Result) -> Result:
    """The mean of two runs of the same row."""
    return Result((first.rate + second.rate) / 2, (first.p99_ms + second.p99_ms) / 2, first.errors + second.errors,
                  first.requests + second.requests, (first.app_us + second.app_us) / 2,
                  (first.db_us + second.db_us) / 2)


# -- CPU per request ---------------------------------------------------------------------------------------
# The rate swings with everything else the machine runs; the CPU a request costs the server's processes
# (user + system, from /proc) much less, so each row also says that: the app's, then PostgreSQL's.


def _parents() -> dict[int, tuple[int, str]]:
    """Every live process: its parent and its program name."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                name, rest = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:  # gone meanwhile
                continue
            found[int(entry.name)] = (int(rest.split()[1]), name.split("(", 1)[1])
    return found


def _tree(root: int, parents: dict[int, tuple[int, str]]) -> set[int]:
    """``root`` and every process under it."""
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, (parent, _) in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def _cpu_seconds(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measured(server: int, run: Callable[[], Result]) -> Result:
    """``run``'s result with the CPU per request of ``server``'s processes and of PostgreSQL's.

    PostgreSQL's: every ``postgres`` process under this one (the embedded server is our child);
    with ``LETTERBOX_BENCH_DATABASE_URL`` set it is not ours, and its CPU is not counted.
    """
    parents = _parents()
    app = _tree(server, parents)
    db = {pid for pid in _tree(os.getpid(), parents) if parents[pid][1].startswith("postgres")}
    app_before, db_before = _cpu_seconds(app), _cpu_seconds(db)
    result = run()
    requests = max(result.requests, 1)
    return msgspec.structs.replace(result, app_us=(_cpu_seconds(app) - app_before) / requests * 1e6,
                                   db_us=(_cpu_seconds(db) - db_before) / requests * 1e6)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: int, connections: int, script: list[str] | None = None) -> Result:
    """Run wrk against ``url``; ``script``: a Lua file of bench/ and its arguments."""
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        command += ["-s", str(HERE / script[0]), url, "--", *script[1:]]
    else:
        command.append(url)
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    out = done.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    done_count = re.search(r"(\d+) requests in", out)
    if rate is None or p99 is None or done_count is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    count = (int(errors[1]) if errors else 0) + (sum(int(n) for n in failed.groups()) if failed else 0)
    return Result(float(rate[1]), float(p99[1]) * _UNITS[p99[2]], count, int(done_count[1]))


# -- the data ----------------------------------------------------------------------------------------------


async def prepare(url: str, per_run: int, runs: int, var_dir: Path) -> list[tuple[Path, Path]]:
    """Lists, the bare table, and per run a file of one-click paths and one of confirm paths."""
    signer = TokenSigner([SECRET])
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO lists (slug, name) VALUES ('news', 'Newsletter'), ('training', 'Training')
                ON CONFLICT DO NOTHING;
            CREATE TABLE IF NOT EXISTS bench_bare (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL, name text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now());
            """
        )
        news = await conn.fetchval("SELECT id FROM lists WHERE slug = 'news'")
        files = []
        for run in range(runs):
            paths = {}
            for status in ("active", "pending"):
                ids = [r["id"] for r in await conn.fetch(
                    "INSERT INTO subscribers (email, name, status, confirmed_at) "
                    "SELECT $1 || g || '@example.org', 'Reader', $2, CASE WHEN $2 = 'active' THEN now() END "
                    "FROM generate_series(1, $3) g RETURNING id",
                    f"http-{run}-{status}-", status, per_run,
                )]
                await conn.execute(
                    "INSERT INTO subscriptions (list_id, subscriber_id, status) "
                    "SELECT $1, id, $2 FROM unnest($3::bigint[]) id",
                    news, "confirmed" if status == "active" else "pending", ids,
                )
                if status == "active":
                    lines = [f"/unsubscribe/{signer.sign(Purpose.UNSUBSCRIBE, i, news, None)}" for i in ids]
                else:
                    lines = [f"/confirm/{signer.sign(Purpose.CONFIRM, i)}" for i in ids]
                paths[status] = var_dir / f"{status}-{run}.txt"
                paths[status].write_text("\n".join(lines) + "\n")
            files.append((paths["active"], paths["pending"]))
        await conn.execute("ANALYZE")
        return files
    finally:
        await conn.close()


# -- the run -----------------------------------------------------------------------------------------------


def measure_letterbox(server: int, base: str, seconds: int, connections: int, files: tuple[Path, Path],
                      run: str) -> dict[str, Result]:
    """Every public row against one running Letterbox (``server``: its process id)."""
    page = httpx.get(f"{base}/subscribe").text
    token = html.unescape(_CSRF.findall(page)[0])
    form = f"csrf={token}&email=bench-{{n}}%40example.org&name=Bench&lists=news&website="
    subscribe = ["http_unique.lua", form, "application/x-www-form-urlencoded", run]
    wrk(f"{base}/subscribe", 1, connections, [*subscribe[:3], f"{run}w"])  # warm up: templates, statements
    wrk(f"{base}/subscribe", 1, connections)
    unsubscribe, confirm = files
    rows: dict[str, tuple[str, list[str] | None]] = {
        "POST /subscribe (new address each time)": (f"{base}/subscribe", subscribe),
        "POST /unsubscribe/{token} one-click": (
            base, ["http_paths.lua", str(unsubscribe), "List-Unsubscribe=One-Click", str(WRK_THREADS)]),
        "POST /confirm/{token}": (base, ["http_paths.lua", str(confirm), "", str(WRK_THREADS)]),
        "GET /subscribe": (f"{base}/subscribe", None),
        "GET /healthz": (f"{base}/healthz", None),
    }
    return {name: measured(server, functools.partial(wrk, url, seconds, connections, script))
            for name, (url, script) in rows.items()}


def measure_bare(server: int, base: str, seconds: int, connections: int, run: str) -> tuple[Result, Result]:
    """The bare POST and the bare GET (``server``: the bare app's process id)."""
    body = ["http_unique.lua", '{"email": "bare-{n}@example.org", "name": "Bench"}', "application/json"]
    wrk(f"{base}/bare", 1, connections, [*body, f"{run}w"])
    return (measured(server, functools.partial(wrk, f"{base}/bare", seconds, connections, [*body, run])),
            measured(server, functools.partial(wrk, f"{base}/bare", seconds, connections)))


def run_bare(url: str, workers: int, var_dir: Path, args: argparse.Namespace, run: str, *,
             one_write: bool = False) -> tuple[Result, Result]:
    """Start the bare app with ``workers`` processes, measure its POST and GET, stop it."""
    port = _free_port()
    with bare(url, port, workers, var_dir, one_write=one_write) as server:
        return measure_bare(server, f"http://127.0.0.1:{port}", args.seconds, args.connections, run)


def table(workers: int, ours: dict[str, Result], bare_post: Result, bare_get: Result) -> str:
    """The issue's table for one number of processes."""
    plural = "es" if workers > 1 else ""
    lines = [
        f"{workers} HTTP process{plural} each (LETTERBOX_WEB_WORKERS={workers}; the bare app in as many)",
        "| endpoint | Letterbox | baseline in the same run | ratio | CPU ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, result in ours.items():
        base, label = (bare_post, "bare POST") if name.startswith("POST") else (bare_get, "bare GET")
        cpu = (base.app_us + base.db_us) / max(result.app_us + result.db_us, 1e-9)
        lines.append(f"| `{name}` | {result.cell()} | {label}: {base.cell()} | {result.rate / base.rate:.2f} "
                     f"| {cpu:.2f} |")
    return "\n".join(lines)


def one_write_line(ours: dict[str, Result], bare_post: Result, bare_get: Result, post: Result, get: Result) -> str:
    """What Letterbox's HTTP protocol gives the bare app, and Letterbox's CPU ratios against that."""
    def cpu(result: Result) -> float:
        return result.app_us + result.db_us

    ratios = ", ".join(
        f"{name.split(' (')[0]} {cpu(post if name.startswith('POST') else get) / max(cpu(result), 1e-9):.2f}"
        for name, result in ours.items())
    return (f"The bare app on Letterbox's HTTP protocol (one write per answer), same run: POST {post.cell()} "
            f"(uvicorn's: {cpu(bare_post):,.0f} µs), GET {get.cell()} (uvicorn's: {cpu(bare_get):,.0f} µs). "
            f"Letterbox's CPU ratios against it: {ratios}.")


def main() -> int:
    """Run the benchmark and print one table per number of processes; 2 when wrk is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="per row (default 5)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="HTTP processes, one table each")
    parser.add_argument("--tokens", type=int, default=30_000, help="one-click and confirm tokens per table")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--one-write", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:  # the bench's own child: the bare app on PORT
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        serve_bare(args.serve_bare, args.workers[0], one_write=args.one_write)
        return 0
    if shutil.which("wrk") is None:
        print("bench/http.py needs wrk: apt-get install -y wrk (Debian's package)", file=sys.stderr)
        return 2
    run = str(int(time.time()))
    with bench_database("letterbox_bench_http") as url, tempfile.TemporaryDirectory() as tmp:
        var_dir = Path(tmp)
        files = asyncio.run(prepare(url, args.tokens, len(args.workers), var_dir))
        for index, workers in enumerate(args.workers):
            # The baseline runs before and after Letterbox and counts as their mean, so that a change in
            # the machine's load during the run falls on both sides alike.
            post_1, get_1 = run_bare(url, workers, var_dir, args, f"{run}-{workers}-before")
            port = _free_port()
            with letterbox(url, port, workers, var_dir) as server:
                ours = measure_letterbox(server, f"http://127.0.0.1:{port}", args.seconds, args.connections,
                                         files[index], f"{run}-{workers}")
            post_2, get_2 = run_bare(url, workers, var_dir, args, f"{run}-{workers}-after")
            bare_post, bare_get = mean(post_1, post_2), mean(get_1, get_2)
            post_ow, get_ow = run_bare(url, workers, var_dir, args, f"{run}-{workers}-one-write", one_write=True)
            print(table(workers, ours, bare_post, bare_get) + "\n", flush=True)
            print(one_write_line(ours, bare_post, bare_get, post_ow, get_ow) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
