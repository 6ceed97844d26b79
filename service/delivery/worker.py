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
import bisect
import contextlib
import os
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import structlog

from ..db.outage_log import OutageLog
from ..db.pool import DATABASE_TROUBLE, Database
from ..events.outbox import emit_edition
from ..events.sender import EventSender
from ..links import Links
from ..mail.addresses import sender_domain, wire_address
from ..mail.compose import EditionMail, Personalisation, PreparedMail, format_date, prepare
from ..mail.confirmation import ConfirmationMails
from ..metrics import Metrics
from ..runtime import Runtime
from ..settings import Settings
from .dkim_keys import DkimKeys
from .housekeeping import housekeeping
from .leases import LeaseKeeper
from .rate import RateLimiter
from .recorder import Recorder
from .retry import backoff_delay
from .transport import Outcome, Transport, make_transport

log = structlog.get_logger(__name__)

_IDLE_POLL_SECONDS = 0.25
_HOUSEKEEPING_SECONDS = 2.0
_SYSTEM_MAIL_BATCH = 50


class EditionHalted(Exception):
    """Every copy of an edition would fail for the same reason: pause it with that reason instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Chore = Callable[[], Awaitable[int]]
"""Work of a package above this one that the loop also does (deciding sign-ups, purging): it returns how
much it did, 0 when it had nothing to do.  Handed in by service/background.py, so that delivery never
imports the packages that use it."""


class Worker:
    """One worker: its transport, its prepared-edition cache and its lease name."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        metrics: Metrics,
        links: Links,
        transport: Transport,
        *,
        chores: Sequence[Chore] = (),
        periodic: Sequence[Chore] = (),
    ) -> None:
        self.chores = tuple(chores)
        """Done on every pass of the loop."""
        self.periodic = tuple(periodic)
        """Done with the housekeeping, every few seconds."""
        self.settings = settings
        self.db = db
        self.q = db.q
        self.metrics = metrics
        self.links = links
        self.confirmations = ConfirmationMails(settings, links)
        self.transport = transport
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.limiter = RateLimiter(settings.send_rate)
        self._prepared: OrderedDict[tuple[int, int | None], tuple[PreparedMail, str]] = OrderedDict()
        self.dkim = DkimKeys.from_settings(settings)
        self.leases = LeaseKeeper(db, settings.lease_seconds)
        self._last_edition = 0  # editions take turns: see send_batch
        self._outage = OutageLog("worker_database_trouble", "failed_loops")
        self.events = EventSender(settings, db)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; survives database outages by waiting and trying again."""
        log.info("worker_started", worker=self.name)
        try:
            async with self.leases:
                await self._loop(stop)
        except Exception:
            # Not reached by anything one copy does (see send_batch); if it is, say so loudly: the
            # process exits non-zero so that its supervisor restarts it (see service/app.py, cli.py).
            log.exception("worker_crashed", worker=self.name)
            raise
        finally:
            await self.transport.close()
            await self.events.close()
            if self.dkim is not None:
                await self.dkim.close()
            log.info("worker_stopped", worker=self.name)

    async def _loop(self, stop: asyncio.Event) -> None:
        last_housekeeping = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - last_housekeeping > _HOUSEKEEPING_SECONDS:
                    await housekeeping(self.db, self.settings)
                    for job in self.periodic:
                        await job()
                    last_housekeeping = time.monotonic()
                busy = 0
                for chore in self.chores:
                    busy += await chore()
                busy += await self.send_system_mails(stop)
                busy += await self.send_batch(stop)
                busy += await self.events.send_due()
                self.metrics.worker_progress()
            except DATABASE_TROUBLE as exc:
                self._outage.note(exc, worker=self.name)
                busy = 0
                await _sleep_unless(stop, 1.0)
            if not busy:
                await _sleep_unless(stop, _IDLE_POLL_SECONDS)

    # -- editions ------------------------------------------------------------------

    async def send_batch(self, stop: asyncio.Event) -> int:
        """Claim, send and record one batch of edition copies; return how many were claimed."""
        rows: list[asyncpg.Record] = []
        rows_sending = await self.db.pool.fetch(self.q["editions-sending"])
        urgent = [r["id"] for r in rows_sending if r["priority"] == "urgent"]
        normal = [r["id"] for r in rows_sending if r["priority"] != "urgent"]
        for edition_id in self._in_turn(urgent) + self._in_turn(normal):
            rows = await self.db.pool.fetch(
                self.q["delivery-claim"],
                self.settings.worker_batch_size,
                self.settings.lease_seconds,
                self.name,
                edition_id,
                self.settings.retry_for_hours * 3600,
            )
            if rows:
                self._last_edition = edition_id
                break
        if not rows:
            return 0
        claimed = {r["id"] for r in rows}
        self.leases.deliveries |= claimed
        try:
            await self._send_claimed(rows, stop)
        finally:
            self.leases.deliveries -= claimed
        return len(rows)

    def _in_turn(self, editions: list[int]) -> list[int]:
        """Editions take turns, a batch each, starting after the last one served: a 50-person
        briefing posted behind a 100,000-copy edition goes out within a batch, not after it."""
        turn = bisect.bisect_right(editions, self._last_edition)
        return editions[turn:] + editions[:turn]

    async def _send_claimed(self, rows: list[asyncpg.Record], stop: asyncio.Event) -> None:
        """Send the claimed copies over the pooled connections and record every result."""
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
        halted: dict[int, str] = {}

        async def sender() -> None:
            while not stop.is_set() and not halted:
                try:
                    row = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await recorder.reserve()
                try:
                    outcome, message_id = await self._send_one(row, date)
                except EditionHalted as exc:
                    halted.setdefault(row["edition_id"], exc.reason)
                    recorder.released(row["id"])
                    continue
                except DATABASE_TROUBLE:
                    raise  # the database is away: the loop waits for it; the lease brings the copy back
                except Exception as exc:  # one copy must never stop the send loop
                    log.exception("copy_failed_unexpectedly", delivery_id=row["id"], edition_id=row["edition_id"])
                    outcome = Outcome(False, permanent=True, reply=f"internal error: {type(exc).__name__}: {exc}")
                    message_id = ""
                recorder.outcome(row["id"], row["attempts"], outcome, message_id, row["retry_ends_at"])

        try:
            # Two senders per connection: while one copy is on the wire, the next is composed (and
            # signed, in the signing process) instead of the connection waiting for it.
            await asyncio.gather(*(sender() for _ in range(2 * self.settings.smtp_concurrency)))
        finally:
            await recorder.close()
        unsent = [queue.get_nowait()["id"] for _ in range(queue.qsize())]
        if unsent:  # stopping or halted: give the rest back at once rather than waiting for the lease
            await self.db.pool.execute(self.q["delivery-release"], unsent)
        for edition_id, reason in halted.items():
            async with self.db.transaction() as conn:  # paused together with its edition.paused event
                if paused := await conn.fetchval(self.q["edition-halt"], edition_id, reason[:500]) is not None:
                    await emit_edition(conn, self.q, "edition.paused", edition_id)
            if paused:
                log.error("edition_paused", edition_id=edition_id, reason=reason)
                self._prepared = OrderedDict((k, v) for k, v in self._prepared.items() if k[0] != edition_id)

    async def _send_one(self, row: asyncpg.Record, date: str) -> tuple[Outcome, str]:
        """Compose and send one copy. A problem of this copy alone is its outcome; a problem every
        copy of the edition would share raises :class:`EditionHalted`."""
        mail, domain = await self._prepared_for(row["edition_id"], row["list_id"])
        token = self.links.unsubscribe_token(row["subscriber_id"], row["list_id"], row["edition_id"])
        message_id = f"<{row['id']}.{secrets.token_hex(6)}@{domain}>"
        try:
            recipient = wire_address(row["email"])
            copy = mail.render_copy(
                Personalisation(
                    to_email=row["email"],
                    to_name=row["name"] or "",
                    unsubscribe_url=self.links.unsubscribe_url(token),
                    unsubscribe_mailto=self.links.unsubscribe_mailto(token),
                    preferences_url=self.links.preferences_url(row["subscriber_id"]),
                    message_id=message_id,
                    view_url=self.links.view_url(row["edition_id"], row["subscriber_id"]),
                ),
                date=date,
            )
        except ValueError as exc:  # this reader's values (the address): retrying cannot help
            return Outcome(False, permanent=True, reply=f"not composed: {exc}"), ""
        message, data = copy.message, copy.data
        if self.dkim is not None:
            try:
                signature = await self.dkim.header_for_copy(copy.pieces, mail.shared, domain)
            except ValueError as exc:
                raise EditionHalted(f"copies cannot be DKIM-signed for {domain}: {exc}") from exc
            signed = signature + message
            data = signed if data is message else signature + data  # the usual copy: one join, not two
            message = signed
        await self.limiter.acquire()
        started = time.perf_counter()
        outcome = await self.transport.send(self.links.verp_address(row["id"]), recipient, message, data=data)
        self.metrics.send_latency.observe(time.perf_counter() - started)
        if outcome.shared and outcome.permanent:
            raise EditionHalted(f"the mail server refuses every copy: {outcome.reply}")
        return outcome, message_id

    async def _prepared_for(self, edition_id: int, list_id: int | None) -> tuple[PreparedMail, str]:
        key = (edition_id, list_id)
        cached = self._prepared.get(key)
        if cached is not None:
            return cached
        edition = await self.db.pool.fetchrow(self.q["edition-content"], edition_id)
        assert edition is not None, "deliveries cascade with their edition"
        lst = await self.db.pool.fetchrow(self.q["list-by-id"], list_id) if list_id is not None else None
        list_slug, list_name = (lst["slug"], lst["name"]) if lst else ("letterbox", "")
        try:
            domain = sender_domain(edition["from_addr"], self.settings.effective_bounce_domain)
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
                one_click=self.settings.one_click,
            )
        except ValueError as exc:  # posting checks the same, so only data from before a change gets here
            raise EditionHalted(f"the edition cannot be composed: {exc}") from exc
        self._prepared[key] = (mail, domain)
        while len(self._prepared) > 32:
            self._prepared.popitem(last=False)
        return self._prepared[key]

    # -- system mail ----------------------------------------------------------------

    async def send_system_mails(self, stop: asyncio.Event) -> int:
        """Send due confirmation and other system mails; return how many were claimed."""
        rows = await self.db.pool.fetch(self.q["system-mail-claim"], _SYSTEM_MAIL_BATCH, self.settings.lease_seconds)
        claimed = {r["id"] for r in rows}
        self.leases.system_mails |= claimed
        try:
            for row in rows:
                if stop.is_set():
                    break
                outcome = await self._send_system_mail(self.links.system_mail_return_path(row["id"]), row)
                if outcome.accepted:
                    await self.db.pool.execute(self.q["system-mail-sent"], row["id"], outcome.reply[:500])
                    self.metrics.system_mails.inc()
                elif outcome.permanent or row["attempts"] >= self.settings.send_max_attempts:
                    await self.db.pool.execute(self.q["system-mail-failed"], row["id"], outcome.reply[:500])
                else:
                    delay = backoff_delay(row["attempts"], self.settings)
                    await self.db.pool.execute(self.q["system-mail-retry"], row["id"], delay, outcome.reply[:500])
        finally:
            self.leases.system_mails -= claimed
        return len(rows)

    async def _send_system_mail(self, envelope_from: str, row: asyncpg.Record) -> Outcome:
        """DKIM-sign (when a key is set) and send one queued system mail; never raises for its content."""
        try:
            if row["message"] is None:  # a confirmation, stored as what it needs: composed as it leaves
                message = self.confirmations.compose(row["subscriber_id"], row["recipient"], row["lists"])
            else:
                message = bytes(row["message"])
            if self.dkim is not None:
                domain = sender_domain(self.settings.from_addr, self.settings.effective_bounce_domain)
                message = self.dkim.sign(message, domain)
            return await self.transport.send(envelope_from, wire_address(row["recipient"]), message)
        except ValueError as exc:  # this mail's address or content: retrying cannot help
            return Outcome(False, permanent=True, reply=f"not sent: {exc}")
        except Exception as exc:  # one mail must never stop the send loop
            log.exception("system_mail_failed_unexpectedly", system_mail_id=row["id"])
            return Outcome(False, permanent=True, reply=f"internal error: {type(exc).__name__}: {exc}")


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_delivery(
    runtime: Runtime,
    stop: asyncio.Event,
    *,
    transport: Transport | None = None,
    chores: Sequence[Chore] = (),
    periodic: Sequence[Chore] = (),
) -> None:
    """Run one worker until ``stop`` is set; service/background.py adds the other packages' chores."""
    settings, metrics = runtime.settings, runtime.metrics
    worker = Worker(
        settings, runtime.db, metrics, runtime.links, transport or make_transport(settings),
        chores=chores, periodic=periodic,
    )  # fmt: skip
    with metrics.worker_alive():
        await worker.run(stop)
