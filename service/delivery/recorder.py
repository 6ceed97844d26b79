"""Writing delivery results back as soon as they are known.

A worker killed after the SMTP server accepted a copy but before the result
was written would send that copy again, so results must not wait for the end
of a batch.  Senders hand each result to the recorder at once; the recorder
writes whatever has accumulated in one statement per kind, then immediately
looks again: at a low rate every result is written on its own, at a high rate
results group themselves like a group commit.  The window in which a kill can
cause a duplicate is one database round trip.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from ..bounces.ingest import record_send_refusal
from ..db.outage_log import OutageLog
from ..db.pool import DATABASE_TROUBLE, Database
from ..metrics import Metrics
from ..settings import Settings
from .retry import backoff_delay
from .transport import Outcome

log = structlog.get_logger(__name__)


@dataclass
class _Pending:
    sent: list[tuple[int, str, str]] = field(default_factory=list)
    retry: list[tuple[int, float, str]] = field(default_factory=list)
    final: list[tuple[int, str, str]] = field(default_factory=list)
    bounces: list[tuple[int, str]] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    sends: int = 0
    """How many of these results are sends (each holds a slot until written)."""

    def __bool__(self) -> bool:
        return bool(self.sent or self.retry or self.final or self.bounces or self.released)

    def __len__(self) -> int:
        return len(self.sent) + len(self.retry) + len(self.final)

    def merge(self, other: _Pending) -> None:
        """Add another group's results to this one."""
        self.sent += other.sent
        self.retry += other.retry
        self.final += other.final
        self.bounces += other.bounces
        self.released += other.released
        self.sends += other.sends


def max_unwritten(settings: Settings) -> int:
    """Copies that may be in flight or sent-but-unrecorded at once: the most a SIGKILL can repeat."""
    return 4 * settings.smtp_concurrency


class Recorder:
    """Collects results from concurrent senders and writes them promptly in small groups."""

    def __init__(self, db: Database, settings: Settings, metrics: Metrics) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        # A send holds a slot from before it starts until its result is written, which bounds
        # the copies a SIGKILL can repeat even when the database is slow to answer.
        self._slots = asyncio.Semaphore(max_unwritten(settings))
        self._outage = OutageLog("results_not_written_yet", "failed_writes")

    async def reserve(self) -> None:
        """Wait for a slot before sending a copy (see ``max_unwritten``)."""
        await self._slots.acquire()

    def start(self) -> None:
        """Begin writing in the background."""
        self._task = asyncio.create_task(self._run(), name="letterbox-recorder")

    async def close(self) -> None:
        """Write everything still pending and stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    def outcome(
        self, delivery_id: int, attempts: int, outcome: Outcome, message_id: str, retry_ends_at: datetime | None
    ) -> None:
        """Take one send result (of a send that called :meth:`reserve`).

        ``retry_ends_at``: a temporary failure whose next try would fall after it fails for good
        (the retry window from the first try, or the edition's expiry).
        """
        self._pending.sends += 1
        if outcome.accepted:
            self._pending.sent.append((delivery_id, message_id, outcome.reply[:500]))
            self.metrics.sent.inc()
        elif outcome.permanent:
            self._pending.final.append((delivery_id, "failed", outcome.reply[:500]))
            if outcome.code is not None:  # an SMTP 5xx refusal is a bounce, classified like any report
                self._pending.bounces.append((delivery_id, outcome.reply[:500]))
            self.metrics.failed.inc()
        else:
            delay = backoff_delay(attempts, self.settings)
            out_of_time = retry_ends_at is not None and datetime.now(UTC) + timedelta(seconds=delay) > retry_ends_at
            if out_of_time or attempts >= self.settings.send_max_attempts:
                reply = f"gave up after {attempts} tries: {outcome.reply}"
                self._pending.final.append((delivery_id, "failed", reply[:500]))
                self.metrics.failed.inc()
            else:
                self._pending.retry.append((delivery_id, delay, outcome.reply[:500]))
                self.metrics.retried.inc()
        self._wake.set()

    def released(self, delivery_id: int) -> None:
        """Give back a reserved copy unsent, without counting the attempt (its edition was halted)."""
        self._pending.sends += 1
        self._pending.released.append(delivery_id)
        self._wake.set()

    def skipped(self, delivery_id: int, reason: str) -> None:
        """A copy that may no longer be sent (unsubscribed, suppressed, erased)."""
        self._pending.final.append((delivery_id, "skipped", reason))
        self.metrics.skipped.inc()
        self._wake.set()

    async def _run(self) -> None:
        unwritten = _Pending()
        failing_since: float | None = None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending:
                batch, self._pending = self._pending, _Pending()
                unwritten.merge(batch)
            if unwritten:
                try:
                    await self._write(unwritten)
                    for _ in range(unwritten.sends):
                        self._slots.release()
                    unwritten, failing_since = _Pending(), None
                except DATABASE_TROUBLE as exc:
                    failing_since = failing_since or time.monotonic()
                    if self._closing and time.monotonic() - failing_since > self.settings.lease_seconds:
                        # Stopping, and the database stayed away past the lease: these copies
                        # will be taken again by another worker; nothing more can be done here.
                        log.error("results_abandoned", pending=len(unwritten))
                        return
                    # The database is away (restart, failover). Results are kept and written when it
                    # returns: dropping them would send those copies again once their lease expires.
                    self._outage.note(exc, pending=len(unwritten))
                    await asyncio.sleep(0.5)
                    self._wake.set()
                    continue
            if self._closing and not self._pending:
                return

    async def _write(self, batch: _Pending) -> None:
        # Committed durably (synchronous_commit stays on): a send's slot is freed only once
        # its result would survive a PostgreSQL crash too; with it off, a killed postmaster
        # forgot the last results and 300 readers got 340 copies. Results group themselves
        # under load, so the flush is paid per group, not per copy.
        q = self.db.q
        # Each statement with its arguments: one array per column of the rows.
        statements: list[tuple[str, list[list[Any]]]] = [
            (query, [list(column) for column in zip(*rows, strict=True)])
            for query, rows in ((q["delivery-mark-sent"], batch.sent), (q["delivery-mark-retry"], batch.retry),
                                (q["delivery-mark-final"], batch.final))
            if rows
        ]
        if batch.released:
            statements.append((q["delivery-release"], [batch.released]))
        if len(statements) == 1 and not batch.bounces:
            # The usual group (copies sent, nothing else): one statement is its own transaction,
            # one round trip instead of BEGIN, the statement and COMMIT.
            query, arguments = statements[0]
            await self.db.pool.execute(query, *arguments)
            return
        async with self.db.transaction() as conn:
            for query, arguments in statements:
                await conn.execute(query, *arguments)
            for delivery_id, reply in batch.bounces:
                await record_send_refusal(conn, q, self.settings, delivery_id, reply)
