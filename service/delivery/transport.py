"""Where finished messages go: an SMTP server (pooled aiosmtplib connections) or a Maildir.

A transport never raises for a delivery problem; it answers with an
:class:`Outcome` that says whether the copy was accepted, and if not whether
to try again (4xx, connection trouble) or give up (5xx).
"""

from __future__ import annotations

import asyncio
import mailbox
import ssl
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
import msgspec
import structlog

from ..mail.addresses import needs_smtputf8
from ..settings import Settings

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

    async def send(self, envelope_from: str, recipient: str, message: bytes) -> Outcome:
        """Deliver ``message``; never raises for a delivery failure."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


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
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(size)
        # Relays cap the mail transactions of one connection (and answer 421 past it): reconnect first.
        self._per_connection = messages_per_connection
        self._transactions: dict[aiosmtplib.SMTP, int] = {}

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
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
        if client.is_ehlo_or_helo_needed:  # greet now: the extensions (SMTPUTF8) decide how to send
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        return client

    async def send(self, envelope_from: str, recipient: str, message: bytes) -> Outcome:
        """Send over an idle pooled connection (or a new one); retry once if a reused one was stale.

        An address with a non-ASCII local part travels with SMTPUTF8 (RFC 6531) when the server
        offers it; when it does not, that copy fails for good with a reason that says so.
        """
        utf8 = needs_smtputf8(envelope_from) or needs_smtputf8(recipient)
        async with self._slots:
            for attempt in (1, 2):
                reused = not self._idle.empty()
                try:
                    client = self._idle.get_nowait() if reused else await self._connect()
                except aiosmtplib.SMTPAuthenticationError as exc:
                    return Outcome(False, permanent=True, shared=True, reply=f"authentication failed: {exc}")
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    return Outcome(False, permanent=False, reply=f"connection failed: {exc}")
                if utf8 and not client.supports_extension("smtputf8"):
                    self._idle.put_nowait(client)
                    return Outcome(False, permanent=True,
                                   reply="the mail server does not offer SMTPUTF8, which this address needs")
                try:
                    _, reply = await client.sendmail(
                        envelope_from, [recipient], message, mail_options=["SMTPUTF8"] if utf8 else None
                    )
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    refused = exc.recipients[0]
                    await self._after_transaction(client)
                    return _refusal(refused.code, refused.message)
                except aiosmtplib.SMTPSenderRefused as exc:
                    await _reset_or_drop(client, self._idle)
                    return msgspec.structs.replace(_refusal(exc.code, exc.message), shared=True, code=None)
                except aiosmtplib.SMTPResponseException as exc:
                    await _reset_or_drop(client, self._idle)
                    return _refusal(exc.code, exc.message)
                except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, OSError, TimeoutError,
                        aiosmtplib.SMTPTimeoutError) as exc:
                    client.close()
                    if reused and attempt == 1:
                        continue  # the server dropped an idle connection; one fresh try
                    return Outcome(False, permanent=False, reply=f"connection lost: {exc}")
                except aiosmtplib.SMTPException as exc:
                    client.close()
                    return Outcome(False, permanent=False, reply=str(exc))
                except ValueError as exc:  # an address aiosmtplib cannot put on the wire
                    await _reset_or_drop(client, self._idle)
                    return Outcome(False, permanent=True, reply=f"address cannot be sent: {exc}")
                await self._after_transaction(client)
                return Outcome(True, reply=reply)
        return Outcome(False, reply="unreachable")  # pragma: no cover - the loop always returns

    async def _after_transaction(self, client: aiosmtplib.SMTP) -> None:
        """Back to the pool, or QUIT once it has carried its share of transactions."""
        done = self._transactions.get(client, 0) + 1
        if done < self._per_connection:
            self._transactions[client] = done
            self._idle.put_nowait(client)
            return
        self._transactions.pop(client, None)
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()

    async def close(self) -> None:
        """QUIT every idle connection."""
        while not self._idle.empty():
            client = self._idle.get_nowait()
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


def _refusal(code: int, message: str) -> Outcome:
    return Outcome(False, permanent=500 <= code < 600, reply=f"{code} {message}".strip(), code=code)


async def _reset_or_drop(client: aiosmtplib.SMTP, idle: asyncio.LifoQueue[aiosmtplib.SMTP]) -> None:
    """After a refused transaction, keep the connection only if RSET works."""
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
        return
    idle.put_nowait(client)


class MaildirTransport:
    """Writes each copy into a Maildir, as a local delivery agent would, for development."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._maildir = mailbox.Maildir(str(path), create=True)

    async def send(self, envelope_from: str, recipient: str, message: bytes) -> Outcome:
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
