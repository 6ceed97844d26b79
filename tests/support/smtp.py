"""A real SMTP server (aiosmtpd) on loopback that records what it receives and can be told to refuse."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    """One accepted message."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str] = field(default_factory=list)
    """ESMTP parameters of MAIL FROM, e.g. ``SMTPUTF8``."""

    def parsed(self) -> EmailMessage:
        """The message parsed with the modern email policy."""
        msg = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class _Handler:
    sink: SmtpSink
    rcpt_replies: dict[str, deque[str]] = field(default_factory=dict)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.sink.pipelining:  # aiosmtpd reads commands in order either way; it just does not say so
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.sink.mail_reply is not None:
            return self.sink.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.sink.dropping:
            # Hang up mid-transaction, as a crashing or overloaded server does.
            server.transport.close()
            return "421 4.3.2 Closing connection"
        with self.sink.lock:
            queue = self.sink.scripted.get(address.lower())
            if queue:
                return queue.popleft()
            if self.sink.default_reply is not None:
                return self.sink.default_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        content = envelope.original_content or envelope.content
        with self.sink.lock:
            self.sink.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(content), list(envelope.mail_options))
            )
        return "250 Message accepted"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpSink:
    """Start with :meth:`start`; read :attr:`received`; script refusals per recipient."""

    def __init__(self, *, smtputf8: bool = True, pipelining: bool = True) -> None:
        self.lock = threading.Lock()
        self.pipelining = pipelining
        """Offer PIPELINING (RFC 2920) in the EHLO reply, as Postfix does."""
        self.received: list[Received] = []
        self.scripted: dict[str, deque[str]] = {}
        self.default_reply: str | None = None
        self.mail_reply: str | None = None
        """When set, the answer to every MAIL FROM (e.g. a 550 refusing the sender)."""
        self.dropping = False
        self.delay = 0.0
        self.port = free_port()
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, data_size_limit=None, enable_SMTPUTF8=smtputf8
        )

    def start(self) -> None:
        """Listen in a background thread."""
        self._controller.start()

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    def script(self, address: str, *replies: str) -> None:
        """Answer RCPT for ``address`` with these replies, in order, then accept."""
        with self.lock:
            self.scripted[address.lower()] = deque(replies)

    def messages_for(self, address: str) -> list[Received]:
        """Accepted messages addressed to ``address``."""
        with self.lock:
            return [r for r in self.received if address.lower() in (t.lower() for t in r.rcpt_tos)]

    async def wait_for(self, count: int, within: float = 20.0) -> list[Received]:
        """Wait until at least ``count`` messages arrived; return them all."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            await asyncio.sleep(0.02)
        with self.lock:
            raise AssertionError(f"expected {count} messages, got {len(self.received)}")
