"""Where finished messages go: an SMTP server (a pool of reused connections) or a Maildir.

A transport never raises for a delivery problem; it answers with an
:class:`Outcome` that says whether the copy was accepted, and if not whether
to try again (4xx, connection trouble) or give up (5xx).

aiosmtplib connects, greets, starts TLS and logs in; then the connection is an
:class:`~.smtp_client.SmtpSession`, which pipelines MAIL, RCPT and DATA where
the server offers PIPELINING and writes the message in its DATA form as it is.
aiosmtplib's own DATA step rewrites every copy with two regular expressions
(line endings, twice with SIZE, and dot-stuffing): that was about three
quarters of the sending CPU, and composed copies come out of
:mod:`service.mail.compose` in that form already.
"""

from __future__ import annotations

import asyncio
import mailbox
import re
import socket
import ssl
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import unquote, urlsplit

import aiosmtplib
import msgspec
import structlog
from aiosmtplib.email import parse_address
from aiosmtplib.protocol import normalize_message_line_endings

from ..mail.addresses import needs_smtputf8
from ..mail.compose import dot_stuff
from ..settings import Settings
from .smtp_client import CLOSING, Refused, SessionLost, SmtpSession

log = structlog.get_logger(__name__)


class Outcome(msgspec.Struct, frozen=True):
    """What happened to one copy."""

    accepted: bool
    permanent: bool = False
    """For a refusal: True on a 5xx (do not retry)."""
    reply: str = ""
    """The server's reply, for the delivery record."""
    code: int | None = None
    shared: bool = False
    """The refusal is not about this recipient (the sender, the credentials): every copy would get it."""


class Transport(Protocol):
    """Sends one ready message to one recipient."""

    async def send(self, envelope_from: str, recipient: str, message: bytes, *, data: bytes | None = None) -> Outcome:
        """Deliver ``message``; never raises for a delivery failure.

        ``data``, when given, is ``message`` already in its DATA form (see :func:`dot_stuff`).
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


# An address that parses as itself: plain dot-atom local part and domain, nothing to unquote or
# reject. Everything else goes through aiosmtplib's parse_address, as aiosmtplib would send it.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                            r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def _command(verb: bytes, address: str, options: list[bytes], encoding: str) -> bytes:
    """``MAIL FROM:<address> options`` or ``RCPT TO:<address>``, byte for byte as aiosmtplib writes it;
    ValueError for an address it would refuse to put on the wire."""
    plain = address if _PLAIN_ADDRESS.fullmatch(address) else parse_address(address)
    line = b" ".join([verb + b"<" + plain.encode(encoding) + b">", *options])
    if _CONTROL.search(line):
        raise ValueError("Command arg contains a prohibited control character")
    return line + b"\r\n"


class SmtpTransport:
    """A small pool of reused SMTP connections, opened on demand."""

    def __init__(self, url: str, *, size: int = 4, timeout: float = 30.0, messages_per_connection: int = 100) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "localhost"
        self._implicit_tls = parts.scheme == "smtps"
        self._starttls = parts.scheme == "smtp+starttls"
        self._port = parts.port or (465 if self._implicit_tls else 587 if self._starttls else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout
        self._idle: asyncio.LifoQueue[SmtpSession] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(size)
        # Relays cap the mail transactions of one connection (and answer 421 past it): reconnect first.
        self._per_connection = messages_per_connection
        self._local_hostname: str | None = None

    async def _connect(self) -> SmtpSession:
        """A new connection, greeted, encrypted and logged in as configured (by aiosmtplib)."""
        if self._local_hostname is None:  # aiosmtplib would look it up in a thread for every connection
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(
            local_hostname=self._local_hostname,
            hostname=self._host,
            port=self._port,
            use_tls=self._implicit_tls,
            start_tls=self._starttls,
            username=self._username,
            password=self._password,
            timeout=self._timeout,
            tls_context=ssl.create_default_context() if (self._implicit_tls or self._starttls) else None,
        )
        await client.connect()
        if client.is_ehlo_or_helo_needed:  # greet now: the extensions (SMTPUTF8, PIPELINING) decide how to send
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        transport = client.transport
        if transport is None or transport.is_closing():
            client.close()
            raise aiosmtplib.SMTPServerDisconnected("the connection closed while greeting")
        # uvloop's transports (the web processes run on uvloop) have asyncio.Transport's methods
        # without subclassing it: an isinstance check would refuse every connection there.
        return SmtpSession(cast(asyncio.Transport, transport), client.esmtp_extensions, timeout=self._timeout)

    async def send(self, envelope_from: str, recipient: str, message: bytes, *, data: bytes | None = None) -> Outcome:
        """Send over an idle pooled connection (or a new one); once more over a fresh one if a reused
        connection turns out to have been closed by the server while idle.

        ``data`` is ``message`` in its DATA form when the caller has it (see :func:`dot_stuff`);
        then ``message`` must be CRLF-normal too, as its length is the SIZE announced.

        An address with a non-ASCII local part travels with SMTPUTF8 (RFC 6531) when the server
        offers it; when it does not, that copy fails for good with a reason that says so.
        """
        utf8 = needs_smtputf8(envelope_from) or needs_smtputf8(recipient)
        if data is None:
            message = normalize_message_line_endings(message)
            data = dot_stuff(message)
        elif not data.endswith(b"\r\n"):  # a caller's DATA form: the message is CRLF-normal too
            data += b"\r\n"
            message += b"\r\n"
        encoding = "utf-8" if utf8 else "ascii"
        try:
            rcpt_to = _command(b"RCPT TO:", recipient, [], encoding)
            # The SIZE option is added per connection below; the address is checked before anything is sent.
            _command(b"MAIL FROM:", envelope_from, [], encoding)
        except ValueError as exc:  # an address that cannot be put on the wire
            return Outcome(False, permanent=True, reply=f"address cannot be sent: {exc}")
        async with self._slots:
            for attempt in (1, 2):
                reused = not self._idle.empty()
                try:
                    session = self._idle.get_nowait() if reused else await self._connect()
                except aiosmtplib.SMTPAuthenticationError as exc:
                    return Outcome(False, permanent=True, shared=True, reply=f"authentication failed: {exc}")
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    return Outcome(False, permanent=False, reply=f"connection failed: {exc}")
                if utf8 and "smtputf8" not in session.extensions:
                    self._idle.put_nowait(session)
                    return Outcome(False, permanent=True,
                                   reply="the mail server does not offer SMTPUTF8, which this address needs")
                options = [b"SMTPUTF8"] if utf8 else []
                if "size" in session.extensions:  # RFC 1870: the octets of the message, CRLF counted
                    options.insert(0, b"size=%d" % len(message))
                mail_from = _command(b"MAIL FROM:", envelope_from, options, encoding)
                try:
                    reply = await session.send(mail_from, rcpt_to, message, data)
                except Refused as exc:
                    await self._after_refusal(session, exc.reply.code)
                    refusal = _refusal(exc.reply.code, exc.reply.text)
                    if exc.stage == "mail":  # the sender is refused: every copy would be
                        return msgspec.structs.replace(refusal, shared=True, code=None)
                    return refusal
                except SessionLost as exc:
                    session.close()
                    if reused and attempt == 1 and not exc.answered:
                        continue  # the server dropped an idle connection; one fresh try
                    return Outcome(False, permanent=False, reply=f"connection lost: {exc}")
                await self._after_transaction(session)
                return Outcome(True, reply=reply.text)
        return Outcome(False, reply="unreachable")  # pragma: no cover - the loop always returns

    async def _after_refusal(self, session: SmtpSession, code: int) -> None:
        """Reset the envelope and keep the connection, unless the server said it is closing or RSET fails."""
        if code != CLOSING and await session.reset():
            self._idle.put_nowait(session)
        else:
            session.close()

    async def _after_transaction(self, session: SmtpSession) -> None:
        """Back to the pool, or QUIT once it has carried its share of transactions."""
        if session.transactions < self._per_connection:
            self._idle.put_nowait(session)
        else:
            await session.quit()

    async def close(self) -> None:
        """QUIT every idle connection."""
        while not self._idle.empty():
            await self._idle.get_nowait().quit()


def _refusal(code: int, message: str) -> Outcome:
    return Outcome(False, permanent=500 <= code < 600, reply=f"{code} {message}".strip(), code=code)


class MaildirTransport:
    """Writes each copy into a Maildir, as a local delivery agent would, for development."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Maildir creates only its own folder; LETTERBOX_VAR_DIR may not exist yet either.
        path.parent.mkdir(parents=True, exist_ok=True)
        self._maildir = mailbox.Maildir(str(path), create=True)

    async def send(self, envelope_from: str, recipient: str, message: bytes, *, data: bytes | None = None) -> Outcome:
        """Store the copy with the envelope in ``Return-Path`` and ``Delivered-To`` headers."""
        envelope = f"Return-Path: <{envelope_from}>\r\nDelivered-To: {recipient}\r\n".encode()
        try:
            key = await asyncio.to_thread(self._maildir.add, envelope + message)
        except OSError as exc:
            return Outcome(False, permanent=False, reply=f"maildir write failed: {exc}")
        return Outcome(True, reply=f"250 stored as {key}")

    async def close(self) -> None:
        """Nothing to release."""


def make_transport(settings: Settings) -> Transport:
    """SMTP when ``LETTERBOX_SMTP_URL`` is set, else the Maildir outbox under ``var/outbox``."""
    if settings.smtp_url:
        return SmtpTransport(
            settings.smtp_url, size=settings.smtp_concurrency,
            messages_per_connection=settings.smtp_messages_per_connection,
        )
    path = settings.var_path / "outbox"
    log.info("maildir_outbox", path=str(path))
    return MaildirTransport(path)
