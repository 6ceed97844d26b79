"""Mail transactions over one SMTP connection, with MAIL, RCPT and DATA pipelined (RFC 2920).

aiosmtplib connects, greets, starts TLS and logs in (see :mod:`.transport`), then hands its
connection over to an :class:`SmtpSession`. aiosmtplib itself cannot pipeline: it reads one reply
per command it has written and drops a reply that arrives before it asks for one. A session keeps
every reply, in order, so a server that offers PIPELINING gets ``MAIL FROM``, ``RCPT TO`` and
``DATA`` in one write, answers all three together, and then gets the message: two round trips and
two socket writes per copy instead of four of each. A server that does not offer it gets one
command at a time, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

# A reply longer than this (without its end) is not SMTP: the connection is given up.
_MAX_REPLY = 64 * 1024
CLOSING = 421
"""RFC 5321 4.2.3: the server is closing the connection; nothing more can be sent over it."""
_GO_AHEAD = 354


class Reply(NamedTuple):
    """A server reply: its code and its text (the lines of a multi-line reply joined by newlines)."""

    code: int
    text: str


class SessionLost(Exception):
    """The connection closed, stopped answering or answered out of protocol; it cannot be used again."""

    def __init__(self, reason: str, *, answered: bool) -> None:
        super().__init__(reason)
        self.answered = answered
        """Whether the server had answered any command of the transaction before: when it had not,
        a reused connection was stale and the copy can go at once over a fresh one."""


class Refused(Exception):
    """The server refused the transaction at ``stage`` ("mail", "rcpt" or "data") with ``reply``."""

    def __init__(self, stage: str, reply: Reply) -> None:
        super().__init__(f"{stage}: {reply.code} {reply.text}")
        self.stage = stage
        self.reply = reply


class SmtpSession(asyncio.Protocol):
    """One greeted (and, as configured, encrypted and logged-in) connection, sending mail transactions."""

    def __init__(self, transport: asyncio.Transport, extensions: Iterable[str], *, timeout: float) -> None:
        """Take ``transport`` over from whoever spoke to the server until now: from here on its data
        comes to this session. ``extensions``: the EHLO keywords the server offered."""
        self.extensions = frozenset(name.lower() for name in extensions)
        self.pipelining = "pipelining" in self.extensions
        self.chunking = self.pipelining and "chunking" in self.extensions
        """BDAT (RFC 3030) in the same write as MAIL and RCPT: only where both are offered."""
        self.transactions = 0
        """Mail transactions this connection has carried (see ``messages_per_connection``)."""
        self._timeout = timeout
        self._transport = transport
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._replies: deque[Reply] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: str | None = None
        self._answered = False
        transport.set_protocol(self)

    # -- asyncio.Protocol ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Split what arrived into replies (RFC 5321 4.2: ``NNN-text`` lines, then ``NNN text``)."""
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            code, separator = line[:3], line[3:4]
            if len(code) != 3 or not code.isdigit() or separator not in (b"", b" ", b"-"):
                self._give_up(f"the server's reply is not SMTP: {line[:80]!r}")
                return
            self._lines.append(line[4:].strip(b" \t").decode("utf-8", "surrogateescape"))
            if separator != b"-":
                self._replies.append(Reply(int(code), "\n".join(self._lines)))
                self._lines = []
        del buffer[:start]
        if len(buffer) > _MAX_REPLY or len(self._lines) > 1000:
            self._give_up("the server's reply has no end")
            return
        if self._replies:
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        """Note why, and wake a transaction waiting for a reply."""
        if self._lost is None:
            self._lost = f"the connection closed: {exc}" if exc else "the server closed the connection"
        self._wake()

    def eof_received(self) -> bool:
        """The server closed its side: close ours too (returning False does)."""
        return False

    # -- mail transactions -----------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Open, and nothing unasked-for waiting (a server about to hang up says 421 first)."""
        return self._lost is None and not self._replies and not self._transport.is_closing()

    async def send(self, mail_from: bytes, rcpt_to: bytes, message: bytes, data: bytes) -> Reply:
        """One mail transaction; the final reply when the server accepted the message.

        ``mail_from`` and ``rcpt_to`` are the whole command lines with their CRLF; ``message`` ends
        in CRLF, and ``data`` is the same in its DATA form, without the final ``.``. Raises
        :class:`Refused` (the caller resets the transaction, or drops the connection after a 421)
        or :class:`SessionLost`.
        """
        if not self.usable:
            raise SessionLost(self._lost or "the server is closing the connection", answered=False)
        self._answered = False
        if self.chunking:
            # RFC 3030: BDAT carries the message as it is, its length announced, so it can follow the
            # commands in the same write: one write and one round trip for the whole transaction.
            self._write(b"".join((mail_from, rcpt_to, b"BDAT %d LAST\r\n" % len(message), message)))
            mail, rcpt, final = [await self._answer(stage) for stage in ("mail", "rcpt", "data")]
            for stage, reply in (("mail", mail), ("rcpt", rcpt), ("data", final)):
                if not _positive(reply):
                    raise Refused(stage, reply)
            self.transactions += 1
            return final
        if self.pipelining:
            self._write(mail_from + rcpt_to + b"DATA\r\n")
            mail, rcpt, start = [await self._answer(stage) for stage in ("mail", "rcpt", "data")]
            refused = (Refused("mail", mail) if not _positive(mail) else Refused("rcpt", rcpt) if not _positive(rcpt)
                       else Refused("data", start) if start.code != _GO_AHEAD else None)
            if refused is not None:
                if start.code == _GO_AHEAD:
                    # DATA accepted although MAIL or RCPT failed (RFC 2920 says a server must not):
                    # end the empty message; its reply can only be a refusal.
                    self._write(b".\r\n")
                    await self._answer("data")
                raise refused
        else:
            for stage, line in (("mail", mail_from), ("rcpt", rcpt_to)):
                self._write(line)
                if not _positive(reply := await self._answer(stage)):
                    raise Refused(stage, reply)
            self._write(b"DATA\r\n")
            if (reply := await self._answer("data")).code != _GO_AHEAD:
                raise Refused("data", reply)
        self._write(data + b".\r\n")
        final = await self._answer("data")
        if not _positive(final):
            raise Refused("data", final)
        self.transactions += 1
        return final

    async def reset(self) -> bool:
        """RSET after a refused transaction; whether the connection can carry the next one."""
        if not self.usable:
            return False
        self._write(b"RSET\r\n")
        try:
            reply = await self._next_reply()
        except SessionLost:
            return False
        return reply.code == 250

    async def quit(self) -> None:
        """QUIT politely, then close whatever the answer."""
        if self.usable:
            self._write(b"QUIT\r\n")
            with contextlib.suppress(SessionLost):
                await self._next_reply()
        self.close()

    def close(self) -> None:
        """Drop the connection at once."""
        if self._lost is None:
            self._lost = "closed by the client"
        self._transport.close()

    # -- plumbing ----------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise SessionLost(self._lost or "the connection is closing", answered=self._answered)
        self._transport.write(data)

    async def _answer(self, stage: str) -> Reply:
        """The next reply. A 421 raises :class:`Refused` at once: the server hangs up after it, so
        replies to commands pipelined behind it never come."""
        reply = await self._next_reply()
        if reply.code == CLOSING:
            self.close()
            raise Refused(stage, reply)
        return reply

    async def _next_reply(self) -> Reply:
        while not self._replies:
            if self._lost is not None:
                raise SessionLost(self._lost, answered=self._answered)
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self._timeout):
                    await waiter
            except TimeoutError:
                self.close()
                raise SessionLost(f"no reply within {self._timeout:g} s", answered=self._answered) from None
            finally:
                self._waiter = None
        self._answered = True
        return self._replies.popleft()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _give_up(self, reason: str) -> None:
        self._lost = reason
        self._transport.close()
        self._wake()


def _positive(reply: Reply) -> bool:
    """A 2yz completion (RFC 5321 4.2.1): 250, and 251/252 for a recipient."""
    return 200 <= reply.code < 300
