"""Prometheus metrics, one registry per app so tests can build many apps in one process.

Two kinds of figure:

- counters and gauges this process updates as it works (copies sent, bounces
  acted on, HTTP requests, the worker's last progress);
- figures read from the database when scraped (:class:`QueueFigures`): queue
  depth and lateness per edition in flight, the system-mail backlog.  They are
  the same whichever process is asked, so a dead worker cannot hide them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .db.pool import Database

log = structlog.get_logger(__name__)

_SCRAPE_TIMEOUT_SECONDS = 2.0
# Request latencies: most requests take milliseconds; an import or a big fan-out takes seconds.
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class EditionFigures(msgspec.Struct, frozen=True):
    """One edition in flight, as the database sees it now."""

    edition_id: int
    queued: int
    sending: int
    oldest_due_seconds: float


class Snapshot(msgspec.Struct, frozen=True):
    """Everything :class:`QueueFigures` read in one scrape."""

    queued: int
    sending: int
    editions: list[EditionFigures]
    oldest_due_seconds: float
    system_mail_backlog: int
    system_mail_oldest_seconds: float
    paused: dict[str, int]
    """Editions paused now, by cause: guard, worker, operator."""


class QueueFigures(Collector):
    """Queue figures read from the database at scrape time (call :meth:`refresh` first)."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.database_up: bool | None = None

    async def refresh(self, db: Database) -> None:
        """Read the figures; on failure keep none (absent, not stale) and say the database is down."""
        try:
            async with asyncio.timeout(_SCRAPE_TIMEOUT_SECONDS), db.pool.acquire() as conn:
                totals = await conn.fetchrow(db.q["queue-depth"])
                editions = await conn.fetch(db.q["metrics-editions-in-flight"])
                oldest = await conn.fetchval(db.q["metrics-oldest-due-copy"])
                mails = await conn.fetchrow(db.q["metrics-system-mail-backlog"])
                paused = await conn.fetchrow(db.q["metrics-paused-editions"])
        except Exception as exc:  # a scrape must still answer when the database is away
            log.warning("metrics_database_unavailable", error=type(exc).__name__)
            self.snapshot, self.database_up = None, False
            return
        assert totals is not None and mails is not None and paused is not None, "aggregates return one row"
        self.snapshot = Snapshot(
            queued=totals["queued"],
            sending=totals["sending"],
            editions=[msgspec.convert(dict(row), EditionFigures) for row in editions],
            oldest_due_seconds=float(oldest),
            system_mail_backlog=mails["backlog"],
            system_mail_oldest_seconds=float(mails["oldest_seconds"]),
            paused=dict(paused),
        )
        self.database_up = True

    def collect(self) -> Iterator[Metric]:
        """The families of the last refresh (nothing before the first)."""
        if self.database_up is None:
            return
        yield _gauge("letterbox_database_up", "1 when this scrape could read the queue figures.", int(self.database_up))
        snap = self.snapshot
        if snap is None:
            return
        depth = GaugeMetricFamily("letterbox_queue_depth", "Copies waiting or in flight, by state.", labels=["state"])
        depth.add_metric(["queued"], snap.queued)
        depth.add_metric(["sending"], snap.sending)
        yield depth
        yield _gauge(
            "letterbox_queue_oldest_due_seconds",
            "How long the longest-waiting due copy of any edition in flight has waited (0: none waiting).",
            snap.oldest_due_seconds,
        )
        edition = ["edition"]  # bounded: editions in flight only, at most 100
        queued = GaugeMetricFamily("letterbox_edition_queued", "Copies waiting, per edition in flight.", labels=edition)
        sending = GaugeMetricFamily("letterbox_edition_sending", "Copies leased, per edition.", labels=edition)
        oldest = GaugeMetricFamily(
            "letterbox_edition_oldest_due_seconds", "How long its longest-waiting due copy has waited.", labels=edition
        )
        for figures in snap.editions:
            label = [str(figures.edition_id)]
            queued.add_metric(label, figures.queued)
            sending.add_metric(label, figures.sending)
            oldest.add_metric(label, figures.oldest_due_seconds)
        yield from (queued, sending, oldest)
        yield _gauge("letterbox_system_mail_backlog", "System mails not sent yet.", snap.system_mail_backlog)
        yield _gauge(
            "letterbox_system_mail_oldest_seconds",
            "Age of the oldest system mail not sent yet (0: none).",
            snap.system_mail_oldest_seconds,
        )
        paused = GaugeMetricFamily(
            "letterbox_editions_paused",
            "Editions paused now, by cause: the complaint guard, the worker (a shared failure), an operator.",
            labels=["cause"],
        )
        for cause, count in snap.paused.items():
            paused.add_metric([cause], count)
        yield paused


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class Metrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sent = Counter("letterbox_deliveries_sent", "Copies accepted by the SMTP server.", registry=self.registry)
        self.failed = Counter(
            "letterbox_deliveries_failed", "Copies that failed for good (SMTP 5xx included).", registry=self.registry
        )
        self.retried = Counter(
            "letterbox_deliveries_retried", "Temporary failures scheduled for another try.", registry=self.registry
        )
        self.skipped = Counter(
            "letterbox_deliveries_skipped", "Copies dropped before sending (unsubscribed, suppressed).",
            registry=self.registry,
        )
        self.send_latency = Histogram(
            "letterbox_send_latency_seconds", "Time for the SMTP server to accept one copy.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.system_mails = Counter(
            "letterbox_system_mails_sent", "Confirmation and other system mails sent.", registry=self.registry
        )
        self.bounces = Counter(
            "letterbox_bounce_events", "Bounce and complaint events acted on.", ["kind"], registry=self.registry
        )
        self.http_requests = Counter(
            "letterbox_http_requests", "HTTP requests answered, by route template and status.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.http_duration = Histogram(
            "letterbox_http_request_duration_seconds", "Time to answer an HTTP request, by route template.",
            ["method", "route"], buckets=_HTTP_BUCKETS, registry=self.registry,
        )
        self.bounce_smtp_connections = Gauge(
            "letterbox_bounce_smtp_connections", "Connections the bounce receiver holds open.", registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.bounce_smtp_refused = Counter(
            "letterbox_bounce_smtp_refused", "Connections answered 421 because the receiver was at its cap.",
            registry=self.registry,
        )
        self.queue = QueueFigures()
        self.registry.register(self.queue)
        # Made when a worker starts, so a process without one exports no worker figures (in multiprocess
        # mode merely making a gauge writes it to this process's file).
        self._worker_progress: Gauge | None = None
        self._worker_running: Gauge | None = None
        self._exported = self.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # `serve` with several processes (service/serving.py): every process's figures, added up.
            self._exported = CollectorRegistry()
            # prometheus_client leaves this constructor untyped; it registers itself in the registry given.
            cast(Callable[[CollectorRegistry], object], MultiProcessCollector)(self._exported)
            self._exported.register(self.queue)

    def worker_progress(self) -> None:
        """The worker finished a loop iteration that polled the database successfully."""
        if self._worker_progress is not None:
            self._worker_progress.set_to_current_time()

    @contextmanager
    def worker_alive(self) -> Iterator[None]:
        """Mark the worker running for the duration of the block (and not running after it, however it ends)."""
        if self._worker_running is None:
            self._worker_progress = Gauge(
                "letterbox_worker_last_progress_timestamp_seconds",
                "When this process's worker last finished a loop that reached the database (Unix time).",
                registry=self.registry, multiprocess_mode="max",
            )
            self._worker_running = Gauge(
                "letterbox_worker_running", "1 while this process's worker loop runs, 0 once it has ended.",
                registry=self.registry, multiprocess_mode="livemax",
            )
        self._worker_running.set(1)
        self.worker_progress()
        try:
            yield
        finally:
            self._worker_running.set(0)

    async def scrape(self, db: Database | None) -> bytes:
        """The Prometheus text of every metric, reading the queue figures from ``db`` first when given."""
        if db is not None:
            await self.queue.refresh(db)
        return generate_latest(self._exported)
