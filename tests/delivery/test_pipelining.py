"""Mail transactions pipelined (RFC 2920) against a real aiosmtpd server, seen through a relay.

With PIPELINING offered, MAIL FROM, RCPT TO and DATA leave in one write, before the server has
answered any of them; refusals inside the pipeline and a server that says 421 and hangs up are
told apart as they were one command at a time; a server that does not offer PIPELINING gets one
command at a time. A server that offers CHUNKING too (the benchmarks' sink, as Postfix does, see
tests/test_postfix.py) gets the whole transaction, BDAT and message included, in one write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from bench.smtp_sink import Sink
from service.delivery.transport import SmtpTransport
from tests.delivery.relay import Relay
from tests.support.smtp import SmtpSink, free_port

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n.dot\r\n"


@pytest.fixture(params=[True, False], ids=["pipelining", "one-at-a-time"])
async def sink(request: pytest.FixtureRequest) -> AsyncIterator[tuple[SmtpSink, Relay]]:
    """The tests' aiosmtpd server, offering PIPELINING or not, behind a relay."""
    server = SmtpSink(pipelining=request.param)
    server.start()
    relay = Relay(server.port)
    listening = await relay.serve()
    try:
        yield server, relay
    finally:
        listening.close()
        await asyncio.to_thread(server.stop)


async def test_commands_are_pipelined_only_where_the_server_offers_it(sink: tuple[SmtpSink, Relay]) -> None:
    server, relay = sink
    transport = SmtpTransport(f"smtp://127.0.0.1:{relay.port}", size=1)
    try:
        outcomes = [await transport.send("bounce@example.org", f"r{n}@example.org", MESSAGE) for n in range(3)]
    finally:
        await transport.close()
    assert all(outcome.accepted for outcome in outcomes), outcomes
    assert [r.content for r in server.received] == [MESSAGE] * 3
    assert [r.rcpt_tos for r in server.received] == [[f"r{n}@example.org"] for n in range(3)]
    unanswered = relay.written_before_reply(b"MAIL FROM:")
    if server.pipelining:
        assert unanswered == b"MAIL FROM:<bounce@example.org>\r\nRCPT TO:<r0@example.org>\r\nDATA\r\n", \
            "all three commands go out before the first reply"
    else:
        assert unanswered == b"MAIL FROM:<bounce@example.org>\r\n"
    assert relay.written.count(b"EHLO") == 1


async def test_refusals_inside_the_pipeline_and_the_connection_goes_on(sink: tuple[SmtpSink, Relay]) -> None:
    server, relay = sink
    server.script("gone@example.org", "550 5.1.1 <gone@example.org>: no such user")
    server.script("busy@example.org", "450 4.2.1 Mailbox busy")
    transport = SmtpTransport(f"smtp://127.0.0.1:{relay.port}", size=1)
    try:
        gone = await transport.send("bounce@example.org", "gone@example.org", MESSAGE)
        busy = await transport.send("bounce@example.org", "busy@example.org", MESSAGE)
        server.mail_reply = "553 5.7.1 Sender address rejected"
        sender = await transport.send("bounce@example.org", "fine@example.org", MESSAGE)
        server.mail_reply = None
        fine = await transport.send("bounce@example.org", "fine@example.org", MESSAGE)
    finally:
        await transport.close()
    assert (gone.accepted, gone.permanent, gone.code, gone.shared) == (False, True, 550, False)
    assert gone.reply == "550 5.1.1 <gone@example.org>: no such user"
    assert (busy.accepted, busy.permanent, busy.code) == (False, False, 450)
    assert (sender.accepted, sender.permanent, sender.shared, sender.code) == (False, True, True, None)
    assert sender.reply == "553 5.7.1 Sender address rejected"
    assert fine.accepted, fine.reply
    assert [r.rcpt_tos for r in server.received] == [["fine@example.org"]], "nothing else got through"
    assert relay.written.count(b"RSET") == 3
    assert relay.written.count(b"EHLO") == 1, "one connection carried all four, reset after each refusal"


class _HangsUp:
    """aiosmtpd offering PIPELINING that answers 421 at ``stage`` for one address and then hangs up."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.received: list[list[str]] = []

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    def _maybe_hang_up(self, server: Any, stage: str, address: str) -> str | None:
        if stage == self.stage and address.startswith("closing"):
            # The reply is written before the close takes effect, as a server shutting down does.
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 Service shutting down"
        return None

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        envelope.mail_from = address
        return self._maybe_hang_up(server, "mail", address) or "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        envelope.rcpt_tos.append(address)
        return self._maybe_hang_up(server, "rcpt", address) or "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(list(envelope.rcpt_tos))
        return "250 Accepted"


@pytest.mark.parametrize("stage", ["mail", "rcpt"])
async def test_a_421_mid_pipeline_is_a_retry_and_the_next_copy_takes_a_new_connection(stage: str) -> None:
    handler = _HangsUp(stage)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    relay = Relay(controller.port)
    listening = await relay.serve()
    transport = SmtpTransport(f"smtp://127.0.0.1:{relay.port}", size=1)
    try:
        sender = "closing@example.org" if stage == "mail" else "bounce@example.org"
        closing = await transport.send(sender, "closing@example.org", MESSAGE)
        after = await transport.send("bounce@example.org", "after@example.org", MESSAGE)
    finally:
        await transport.close()
        listening.close()
        await asyncio.to_thread(controller.stop)
    # The 421 itself is the outcome, not a timeout waiting for replies that never come.
    assert (closing.accepted, closing.permanent) == (False, False), closing
    assert closing.reply == "421 4.3.2 Service shutting down"
    # Refused at MAIL: the sender's problem, shared by every copy and no bounce of this reader.
    assert (closing.shared, closing.code) == ((True, None) if stage == "mail" else (False, 421))
    assert after.accepted, after.reply
    assert handler.received == [["after@example.org"]]
    assert relay.written.count(b"EHLO") == 2, "a connection the server closed is not used again"
    assert b"RSET" not in relay.written


async def test_with_chunking_the_whole_transaction_is_one_write(tmp_path: Path) -> None:
    sink = await asyncio.to_thread(Sink, tmp_path / "recipients")
    relay = Relay(sink.port)
    listening = await relay.serve()
    transport = SmtpTransport(f"smtp://127.0.0.1:{relay.port}", size=1)
    try:
        outcomes = [await transport.send("bounce@example.org", f"r{n}@example.org", MESSAGE) for n in range(3)]
    finally:
        await transport.close()
        listening.close()
        await asyncio.to_thread(sink.stop)
    assert all(outcome.accepted for outcome in outcomes), outcomes
    assert sink.recipients() == {f"r{n}@example.org": 1 for n in range(3)}
    # The message goes as it is (no dot-stuffing: its length is announced), after the commands.
    assert relay.written_before_reply(b"MAIL FROM:") == (
        b"MAIL FROM:<bounce@example.org> size=%d\r\nRCPT TO:<r0@example.org>\r\nBDAT %d LAST\r\n%s"
        % (len(MESSAGE), len(MESSAGE), MESSAGE))
