"""The send loop: lease a batch, re-check each reader, send over pooled connections, record.

Any number of workers in any number of processes cooperate through the
database alone (``FOR UPDATE SKIP LOCKED`` plus a lease).  A worker killed
mid-batch loses nothing: its leases expire and another worker takes the
copies again; the only possible duplicate is a copy the SMTP server accepted
in the instant before the kill.  Asked to stop, a worker stops claiming,
finishes the copies in flight and gives the rest of its batch back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections import OrderedDict
from email.utils import parseaddr

import asyncpg
import structlog

from ..db.pool import DATABASE_TROUBLE, Database
from ..links import Links
from ..metrics import Metrics
from ..settings import Settings
from ..tokens import TokenSigner
from .compose import EditionMail, Personalisation, PreparedMail, format_date, prepare
from .dkim_keys import DkimKeys
from .housekeeping import housekeeping
from .rate import RateLimiter
from .recorder import Recorder
from .retry import backoff_delay
from .transport import Outcome, Transport, make_transport

log = structlog.get_logger(__name__)

_IDLE_POLL_SECONDS = 0.25
_HOUSEKEEPING_SECONDS = 2.0
_SYSTEM_MAIL_BATCH = 50


class Worker:
    """One worker: its transport, its prepared-edition cache and its lease name."""

    def __init__(self, settings: Settings, db: Database, metrics: Metrics, links: Links, transport: Transport) -> None:
        self.settings = settings
        self.db = db
        self.q = db.q
        self.metrics = metrics
        self.links = links
        self.transport = transport
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.limiter = RateLimiter(settings.send_rate)
        self._prepared: OrderedDict[tuple[int, int | None], tuple[PreparedMail, str]] = OrderedDict()
        self.dkim = DkimKeys.from_settings(settings)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; survives database outages by waiting and trying again."""
        log.info("worker_started", worker=self.name)
        last_housekeeping = 0.0
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() - last_housekeeping > _HOUSEKEEPING_SECONDS:
                        await housekeeping(self.db, self.settings)
                        last_housekeeping = time.monotonic()
                    busy = await self.send_system_mails(stop)
                    busy += await self.send_batch(stop)
                except DATABASE_TROUBLE as exc:
                    log.warning("worker_database_trouble", error=str(exc))
                    busy = 0
                    await _sleep_unless(stop, 1.0)
                if not busy:
                    await _sleep_unless(stop, _IDLE_POLL_SECONDS)
        finally:
            await self.transport.close()
            log.info("worker_stopped", worker=self.name)

    # -- editions ------------------------------------------------------------------

    async def send_batch(self, stop: asyncio.Event) -> int:
        """Claim, send and record one batch of edition copies; return how many were claimed."""
        rows: list[asyncpg.Record] = []
        for edition in await self.db.pool.fetch(self.q["editions-sending"]):
            rows = await self.db.pool.fetch(
                self.q["delivery-claim"],
                self.settings.worker_batch_size,
                self.settings.lease_seconds,
                self.name,
                edition["id"],
            )
            if rows:
                break
        if not rows:
            return 0
        await self.db.pool.execute(self.q["edition-mark-sending"], list({r["edition_id"] for r in rows}))
        recorder = Recorder(self.db, self.settings, self.metrics)
        recorder.start()
        queue: asyncio.Queue[asyncpg.Record] = asyncio.Queue()
        for row in rows:
            if row["skip_reason"] is not None:
                recorder.skipped(row["id"], row["skip_reason"])
            else:
                queue.put_nowait(row)
        date = format_date()

        async def sender() -> None:
            while not stop.is_set():
                try:
                    row = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await recorder.reserve()
                attempts, outcome, message_id = await self._send_one(row, date)
                recorder.outcome(row["id"], attempts, outcome, message_id)

        try:
            await asyncio.gather(*(sender() for _ in range(self.settings.smtp_concurrency)))
        finally:
            await recorder.close()
        unsent = [queue.get_nowait()["id"] for _ in range(queue.qsize())]
        if unsent:  # stopping: give the rest back at once rather than waiting for the lease
            await self.db.pool.execute(self.q["delivery-release"], unsent)
        return len(rows)

    async def _send_one(self, row: asyncpg.Record, date: str) -> tuple[int, Outcome, str]:
        try:
            mail, domain = await self._prepared_for(row["edition_id"], row["list_id"])
            token = self.links.unsubscribe_token(row["subscriber_id"], row["list_id"], row["edition_id"])
            message_id = f"<{row['id']}.{secrets.token_hex(6)}@{domain}>"
            message = mail.render(
                Personalisation(
                    to_email=row["email"],
                    to_name=row["name"] or "",
                    unsubscribe_url=self.links.unsubscribe_url(token),
                    unsubscribe_mailto=self.links.unsubscribe_mailto(token),
                    preferences_url=self.links.preferences_url(row["subscriber_id"]),
                    message_id=message_id,
                ),
                date=date,
            )
            if self.dkim is not None:
                message = self.dkim.sign(message, domain)
        except ValueError as exc:  # a value the composer or signer refuses: retrying cannot help
            return row["attempts"], Outcome(False, permanent=True, reply=f"not composed: {exc}"), ""
        await self.limiter.acquire()
        started = time.perf_counter()
        outcome = await self.transport.send(self.links.verp_address(row["id"]), row["email"], message)
        self.metrics.send_latency.observe(time.perf_counter() - started)
        return row["attempts"], outcome, message_id

    async def _prepared_for(self, edition_id: int, list_id: int | None) -> tuple[PreparedMail, str]:
        key = (edition_id, list_id)
        cached = self._prepared.get(key)
        if cached is not None:
            return cached
        edition = await self.db.pool.fetchrow(self.q["edition-content"], edition_id)
        assert edition is not None, "deliveries cascade with their edition"
        lst = await self.db.pool.fetchrow(self.q["list-by-id"], list_id) if list_id is not None else None
        domain = parseaddr(edition["from_addr"])[1].rpartition("@")[2] or self.settings.effective_bounce_domain
        list_slug, list_name = (lst["slug"], lst["name"]) if lst else ("letterbox", "")
        mail = prepare(
            EditionMail(
                subject=edition["subject"],
                html=edition["html"],
                text=edition["text_body"],
                from_addr=edition["from_addr"],
                reply_to=edition["reply_to"],
                list_id=f"{list_slug}.{self.settings.effective_bounce_domain}",
                list_name=list_name,
            ),
            message_id_domain=domain,
        )
        self._prepared[key] = (mail, domain)
        while len(self._prepared) > 32:
            self._prepared.popitem(last=False)
        return self._prepared[key]

    # -- system mail ----------------------------------------------------------------

    async def send_system_mails(self, stop: asyncio.Event) -> int:
        """Send due confirmation and other system mails; return how many were claimed."""
        rows = await self.db.pool.fetch(self.q["system-mail-claim"], _SYSTEM_MAIL_BATCH, self.settings.lease_seconds)
        for row in rows:
            if stop.is_set():
                break
            return_path = self.links.system_mail_return_path(row["id"])
            outcome = await self.transport.send(return_path, row["recipient"], bytes(row["message"]))
            if outcome.accepted:
                await self.db.pool.execute(self.q["system-mail-sent"], row["id"], outcome.reply[:500])
                self.metrics.system_mails.inc()
            elif outcome.permanent or row["attempts"] >= self.settings.send_max_attempts:
                await self.db.pool.execute(self.q["system-mail-failed"], row["id"], outcome.reply[:500])
            else:
                delay = backoff_delay(row["attempts"], self.settings)
                await self.db.pool.execute(self.q["system-mail-retry"], row["id"], delay, outcome.reply[:500])
        return len(rows)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_worker(
    settings: Settings,
    db: Database,
    metrics: Metrics,
    signer: TokenSigner,
    stop: asyncio.Event,
    *,
    transport: Transport | None = None,
) -> None:
    """Run one worker until ``stop`` is set (used by ``serve`` and by ``letterbox worker``)."""
    worker = Worker(settings, db, metrics, Links(settings, signer), transport or make_transport(settings))
    await worker.run(stop)
