"""Scale-out on one machine: two API processes and three workers on one PostgreSQL, one SMTP sink.

Real ``letterbox`` processes, real HTTP on loopback, a real SMTP conversation:
an edition posted to one API is delivered to every reader exactly once, all
three workers share the work, and both APIs report the same counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import pytest

from bench.smtp_sink import Sink
from service.settings import Settings
from tests.support.processes import settings_env
from tests.support.seed import seed_readers
from tests.support.smtp import free_port

# Real processes, servers or long generated runs: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

RECIPIENTS = 20_000
WORKERS = 3
APIS = 2
# Generous for a loaded 2-core machine; a quiet one finishes in well under half.
DEADLINE_SECONDS = 50.0


class Process:
    """One ``letterbox`` child with its log in a file (a pipe nobody reads could fill and stall it)."""

    def __init__(self, name: str, settings: Settings, log_dir: Path, *args: str, **overrides: str | int) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            env=settings_env(settings, **overrides),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        """What the process has logged so far."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> None:
        """Fail the test, with the log, if the process has exited."""
        if self.popen.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait, SIGKILL if it will not stop; returns the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return int(self.popen.returncode)


async def _wait(what: str, ready: Any, processes: list[Process], within: float) -> None:
    """Poll the async predicate ``ready`` until true; fail early if a process dies."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for process in processes:
            process.alive()
        if await ready():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out after {within:.0f} s waiting for {what}")


async def _leased_by(database_url: str) -> dict[str | None, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT leased_by, count(*) AS n FROM deliveries WHERE status = 'sent' GROUP BY 1")
        return {r["leased_by"]: r["n"] for r in rows}
    finally:
        await conn.close()


async def test_two_apis_three_workers_deliver_every_copy_exactly_once(
    settings: Settings, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    emails = await seed_readers(settings.database_url or "", RECIPIENTS)
    sink = Sink(tmp_path / "rcpt.txt")
    processes: list[Process] = []
    try:
        smtp_url = f"smtp://127.0.0.1:{sink.port}"
        ports = [free_port() for _ in range(APIS)]
        apis = [
            Process(
                f"api-{n}",
                settings,
                tmp_path,
                "serve",
                "--no-worker",
                "--port",
                str(port),
                smtp_url=smtp_url,
                bootstrap_api_key=settings.bootstrap_api_key or "",
            )
            for n, port in enumerate(ports, 1)
        ]
        workers = [
            Process(f"worker-{n}", settings, tmp_path, "worker", smtp_url=smtp_url, db_pool_size=4)
            for n in range(1, WORKERS + 1)
        ]
        processes = apis + workers
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        async with httpx.AsyncClient(timeout=10.0, headers=admin_headers) as http:

            async def all_ready() -> bool:
                try:
                    answers = [await http.get(f"{base}/readyz") for base in bases]
                except httpx.TransportError:
                    return False
                return all(a.status_code == 200 for a in answers)

            async def all_workers_started() -> bool:
                return all('"worker_started"' in w.log() for w in workers)

            await _wait("both APIs to be ready", all_ready, processes, within=30)
            # Post only once every worker is polling, so that all three can take part.
            await _wait("three workers to start", all_workers_started, processes, within=30)

            posted = await http.post(
                f"{bases[0]}/v1/editions",
                json={"subject": "Scale-out briefing", "html": "<p>Hello {{name}}</p>", "lists": ["news"]},
                headers={"Idempotency-Key": "scale-out"},
            )
            assert posted.status_code == 202, posted.text
            posted_at = time.monotonic()
            edition = posted.json()
            assert edition["recipients"] == RECIPIENTS

            views: list[dict[str, Any]] = []

            async def done_on_both() -> bool:
                nonlocal views
                answers = [await http.get(f"{base}/v1/editions/{edition['id']}") for base in bases]
                assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
                views = [a.json() for a in answers]
                return all(v["status"] == "done" for v in views)

            await _wait("the edition to be done", done_on_both, processes, within=DEADLINE_SECONDS)
            elapsed = time.monotonic() - posted_at

        counts = ("recipients", "queued", "sent", "failed", "skipped")
        first, second = ({k: v[k] for k in counts} for v in views)
        assert first == second, "both APIs read the same state"
        assert first == {"recipients": RECIPIENTS, "queued": 0, "sent": RECIPIENTS, "failed": 0, "skipped": 0}

        # A copy is marked sent only after the sink accepted it (and the sink records before it accepts),
        # so the sink is complete now; stopping first also checks every process shuts down cleanly under load.
        exits = {p.name: p.stop() for p in processes}
        assert exits == dict.fromkeys(exits, 0), "every process stops cleanly on SIGTERM"

        received = sink.recipients()
        assert sink.count == RECIPIENTS, "one message per copy"
        assert sum(received.values()) == RECIPIENTS
        assert set(received) == {e.lower() for e in emails}, "every reader got the edition"
        assert max(received.values()) == 1, received.most_common(3)

        shares = await _leased_by(settings.database_url or "")
        assert None not in shares, "every sent copy records the worker that sent it"
        assert len(shares) == WORKERS, f"all three workers took part: {shares}"
        assert sum(shares.values()) == RECIPIENTS
        # Shown with -s (and kept in the captured output): the figures deploy/README.md quotes.
        print(
            f"\n{RECIPIENTS} copies by {WORKERS} workers in {elapsed:.1f} s from POST to done "
            f"({RECIPIENTS / elapsed:.0f} msg/s); shares {sorted(shares.values())}"
        )
    finally:
        for process in processes:
            with contextlib.suppress(Exception):
                process.stop(timeout=10)
        sink.stop()
