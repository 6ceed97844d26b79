"""The built-in SMTP receiver for bounce mail and ``mailto:`` unsubscribes.

It accepts mail for two kinds of address on the bounce domain only:

- ``bounce+TOKEN@BOUNCE_DOMAIN``, the VERP return path of each copy: the
  report is parsed and its events acted on, tied to the copy the token names;
  the same address with a system-mail token is the return path of a
  confirmation mail, whose hard bounce drops the pending sign-up;
- ``unsubscribe+TOKEN@BOUNCE_DOMAIN``, the ``mailto:`` of ``List-Unsubscribe``:
  the reader leaves the list the mail was for.

Every other recipient, and any token that does not verify, is refused at
RCPT with 550, so a forged bounce cannot even be handed over.  Mail larger
than ``max_bytes`` is refused with 552.  A failure on our side (the database
is down) answers 451, so the sending server keeps the mail and tries again.

The server runs on the caller's event loop (``loop.create_server``), so it
shares the pool of the process it runs in rather than needing a thread and
a pool of its own.  Sharing the process is why connections are bounded:
at most ``LETTERBOX_BOUNCE_SMTP_MAX_CONNECTIONS`` are held (the next one is
answered 421 and closed at once), and one that stays silent for
``LETTERBOX_BOUNCE_SMTP_IDLE_TIMEOUT_SECONDS`` is dropped, so idle
connections can never use up the file descriptors the HTTP API accepts on.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable
from typing import Any, Literal, cast

import msgspec
import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from ..db.pool import Database
from ..metrics import Metrics
from ..runtime import Runtime
from ..settings import Settings, SettingsError
from ..subscribers import lifecycle
from ..tokens import Purpose, TokenInvalid, TokenSigner
from .ingest import copies_named, count, drop_bounced_signups, ingest_events, ours
from .parse import parse_report

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 10 * 1024 * 1024
MAX_RECIPIENTS = 20
SOURCE = "smtp-receiver"
_STOP_GRACE_SECONDS = 10.0
# File descriptors kept free beyond the receiver's cap: the database pool, the HTTP API's
# listener and its clients, logs, and the short-lived sockets of refused connections.
_DESCRIPTOR_HEADROOM = 128
_BUSY = b"421 4.3.2 Too many connections; try again later\r\n"


class Recipient(msgspec.Struct, frozen=True):
    """A verified recipient: what the address is for, its token and the ids the token carries."""

    purpose: Literal["bounce", "system-mail", "unsubscribe", "proof-unsubscribe"]
    token: str
    fields: tuple[int | None, ...]


def read_recipient(address: str, domain: str, signer: TokenSigner) -> Recipient | None:
    """The verified meaning of an RCPT address, or None for any address we do not receive for."""
    local, at, host = address.rpartition("@")
    if not at or host.lower() != domain.lower():
        return None
    prefix, plus, token = local.partition("+")
    purpose = prefix.lower()
    if not plus:
        return None
    try:
        if purpose == "bounce":
            try:
                fields = signer.verify(Purpose.VERP, token)
            except TokenInvalid:
                fields = signer.verify(Purpose.SYSTEM_MAIL, token)
                return Recipient("system-mail", token, fields) if len(fields) == 1 and fields[0] is not None else None
            return Recipient("bounce", token, fields) if len(fields) == 1 and fields[0] is not None else None
        if purpose == "unsubscribe":
            try:
                fields = signer.verify(Purpose.UNSUBSCRIBE, token)
            except TokenInvalid:
                # A proof's mailto: accepted (a mail client must not get a bounce) and ignored.
                signer.verify(Purpose.PROOF_UNSUBSCRIBE, token)
                return Recipient("proof-unsubscribe", token, ())
            return Recipient("unsubscribe", token, fields) if len(fields) == 3 and fields[0] is not None else None
    except TokenInvalid:
        return None
    return None


class _Handler:
    """aiosmtpd hooks: check each recipient at RCPT, act on the mail at the end of DATA."""

    def __init__(self, settings: Settings, db: Database, signer: TokenSigner, metrics: Metrics) -> None:
        self.settings = settings
        self.db = db
        self.signer = signer
        self.metrics = metrics
        self.domain = settings.effective_bounce_domain
        self.in_flight: set[asyncio.Task[str]] = set()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        if read_recipient(address, self.domain, self.signer) is None:
            log.info("bounce_receiver_refused", domain=address.rpartition("@")[2][:100])
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        content = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
        recipients = [r for a in envelope.rcpt_tos if (r := read_recipient(a, self.domain, self.signer))]
        # Tracked and shielded: stopping the receiver waits for this write instead of cutting it off.
        task = asyncio.get_running_loop().create_task(self._act(content, recipients))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)
        return await asyncio.shield(task)

    async def _act(self, content: bytes, recipients: list[Recipient]) -> str:
        """Act on one accepted mail for each of its recipients, in one transaction."""
        try:
            wants_report = any(r.purpose in ("bounce", "system-mail") for r in recipients)
            # Parsing a large mail takes a while; it must not hold up the event loop.
            report = await asyncio.to_thread(parse_report, content, ours(self.settings)) if wants_report else None
            outcomes = []
            async with self.db.transaction() as conn:
                for recipient in recipients:
                    if recipient.purpose == "unsubscribe":
                        subscriber_id, list_id, edition_id = recipient.fields
                        assert subscriber_id is not None, "read_recipient checks the first field"
                        actor = lifecycle.Actor.of("mailto", None, None)
                        await lifecycle.unsubscribe(conn, self.db.q, subscriber_id, list_id, edition_id, actor)
                    elif recipient.purpose == "proof-unsubscribe":
                        continue  # a proof names no one: nothing to change
                    elif recipient.purpose == "system-mail" and report is not None:
                        await drop_bounced_signups(conn, self.db.q, self.signer, [recipient.token], report.events)
                    elif report is not None and report.events:
                        # Anyone may connect: act only on the copy the signed token names (tied_only).
                        copies = await copies_named(conn, self.db.q, self.signer, tokens=[recipient.token])
                        outcomes += await ingest_events(
                            conn, self.db.q, self.settings, report.events, source=SOURCE, copies=copies, tied_only=True
                        )
            count(self.metrics, outcomes)
            if report is not None and not report.events:
                log.info("bounce_receiver_nothing_to_do", auto_reply=report.auto_reply)
            return "250 2.0.0 Received"
        except Exception:
            # Our failure, not the sender's: a 4xx makes the sending server keep the mail and retry.
            log.exception("bounce_receiver_failed")
            return "451 4.3.0 Could not record this message; please try again later"


class _Session(SMTP):
    """An aiosmtpd session that tells the receiver when its connection has ended."""

    def __init__(self, handler: _Handler, *, on_close: Callable[[_Session], None], **options: Any) -> None:
        super().__init__(handler, **options)
        self._on_close = on_close

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            self._on_close(self)


class _Busy(asyncio.Protocol):
    """A connection over the cap: one 421 line, then closed, so its descriptor is freed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, asyncio's or uvloop's (which has the methods without the subclass).
        writer = cast(asyncio.WriteTransport, transport)
        writer.write(_BUSY)
        writer.close()


def ensure_descriptors(max_connections: int) -> None:
    """Make sure the process may open enough files for ``max_connections`` plus headroom.

    Raises the soft ``RLIMIT_NOFILE`` towards the hard one when needed; refuses a cap that
    cannot fit, since running out of descriptors would stop the HTTP API from accepting.
    """
    needed = max_connections + _DESCRIPTOR_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard == resource.RLIM_INFINITY or hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        return
    raise SettingsError(
        "LETTERBOX_BOUNCE_SMTP_MAX_CONNECTIONS",
        f"{max_connections} connections need {needed} open files and the limit is {hard}; lower it or raise ulimit -n",
    )


class BounceReceiver:
    """The SMTP server; ``async with BounceReceiver(...)`` (or :meth:`start` / :meth:`stop`).

    ``port=0`` picks a free port; :attr:`port` says which.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        signer: TokenSigner,
        metrics: Metrics,
        *,
        host: str | None = None,
        port: int | None = None,
        max_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.host = host or settings.host
        self.port = settings.bounce_smtp_port if port is None else port
        self.max_bytes = max_bytes
        self.max_connections = settings.bounce_smtp_max_connections
        self.idle_timeout = settings.bounce_smtp_idle_timeout_seconds
        self._metrics = metrics
        self._handler = _Handler(settings, db, signer, metrics)
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()

    def _closed(self, session: _Session) -> None:
        self._sessions.discard(session)
        self._metrics.bounce_smtp_connections.set(len(self._sessions))

    async def start(self) -> None:
        """Listen on ``host:port`` on the running event loop."""
        if self.port is None:
            raise SettingsError("LETTERBOX_BOUNCE_SMTP_PORT", "set it to the port the bounce receiver listens on")
        ensure_descriptors(self.max_connections)
        loop = asyncio.get_running_loop()

        def session() -> asyncio.Protocol:
            if len(self._sessions) >= self.max_connections:
                self._metrics.bounce_smtp_refused.inc()
                return _Busy()
            smtp = _Session(
                self._handler,
                on_close=self._closed,
                data_size_limit=self.max_bytes,
                enable_SMTPUTF8=True,
                hostname=self._handler.domain,
                ident="Letterbox bounce receiver",
                timeout=self.idle_timeout,
                loop=loop,
            )
            self._sessions.add(smtp)
            self._metrics.bounce_smtp_connections.set(len(self._sessions))
            return smtp

        self._server = await loop.create_server(session, host=self.host, port=self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info(
            "bounce_receiver_listening", host=self.host, port=self.port, domain=self._handler.domain,
            max_connections=self.max_connections, idle_timeout=self.idle_timeout,
        )  # fmt: skip

    async def stop(self) -> None:
        """Stop listening, let mail being recorded finish, then drop the remaining connections."""
        if self._server is None:
            return
        self._server.close()
        if self._handler.in_flight:
            await asyncio.wait(set(self._handler.in_flight), timeout=_STOP_GRACE_SECONDS)
        for smtp in list(self._sessions):
            if smtp.transport is not None:
                smtp.transport.close()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> BounceReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def run_receiver(runtime: Runtime, stop: asyncio.Event) -> None:
    """Receive bounce mail on ``LETTERBOX_BOUNCE_SMTP_PORT`` until ``stop`` is set (``letterbox bounce-receiver``)."""
    async with BounceReceiver(runtime.settings, runtime.db, runtime.signer, runtime.metrics):
        await stop.wait()
