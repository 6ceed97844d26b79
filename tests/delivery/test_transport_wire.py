"""The prepared DATA step puts on the wire exactly what aiosmtplib's ``sendmail`` would have.

A relay in front of a real aiosmtpd server keeps every byte each client writes; the same
message goes once through aiosmtplib and once through our transport, and the two mail
transactions (MAIL FROM to the final ``.``) must be identical, for tricky bodies as given and
for composed copies in the DATA form compose prepared for them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from service.delivery.transport import SmtpTransport
from service.mail.compose import EditionMail, Personalisation, prepare
from tests.delivery.relay import Relay
from tests.support.smtp import free_port


def data_form(message: bytes) -> bytes:
    """What aiosmtplib's DATA step makes of ``message``, by its own functions (without the final '.')."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message))


class _Keep:
    """Keeps each message as the server understood it, answering DATA with ``reply``."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.reply = "250 Accepted"
        self.hang_up = False
        self.stall = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hang_up:
            server.transport.close()
        if self.stall:
            await asyncio.sleep(self.stall)
        self.received.append(envelope.original_content)
        return self.reply


@pytest.fixture
async def server() -> AsyncIterator[tuple[_Keep, Relay]]:
    handler = _Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True)
    controller.start()
    relay = Relay(controller.port)
    listening = await relay.serve()
    try:
        yield handler, relay
    finally:
        listening.close()
        controller.stop()


async def _through_aiosmtplib(port: int, sender: str, recipient: str, message: bytes) -> None:
    utf8 = not (sender + recipient).isascii()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10)
    await client.connect()
    with contextlib.suppress(aiosmtplib.SMTPException):  # some cases are refused: the bytes are compared
        await client.sendmail(sender, [recipient], message, mail_options=["SMTPUTF8"] if utf8 else None)
    await client.quit()


TRICKY = {
    "lines starting with dots": b"From: a@example.org\r\nSubject: dots\r\n\r\n.hidden\r\n..two\r\n.\r\nend\r\n",
    "a message that starts with a dot": b".not a header\r\nbody\r\n",
    "bare LF, no final line break": b"From: a@example.org\nSubject: lf\n\nline one\n.dot after LF\nlast",
    "bare CR": b"From: a@example.org\r\nSubject: cr\r\n\r\nold\rline\r.dot after CR\r\r\n",
    "empty": b"",
    "8-bit and SMTPUTF8": "From: ü@example.org\r\nSubject: Grüße\r\n\r\nGrüße, Jürgen\r\n.ünï\r\n".encode(),
    "a line longer than SMTP allows": b"From: a@example.org\r\n\r\n" + b"x" * 5000 + b"\r\n.x\r\n",
}


@pytest.mark.parametrize("message", TRICKY.values(), ids=TRICKY.keys())
async def test_tricky_bodies_go_out_byte_for_byte_as_aiosmtplib_sends_them(
    server: tuple[_Keep, Relay], message: bytes
) -> None:
    handler, relay = server
    recipient = "üser@example.com" if not message.isascii() else "b@example.org"
    await _through_aiosmtplib(relay.port, "bounce@example.org", recipient, message)
    theirs = relay.transactions()
    transport = SmtpTransport(f"smtp://127.0.0.1:{relay.port}", size=1)
    outcome = await transport.send("bounce@example.org", recipient, message)
    await transport.close()
    ours = relay.transactions()
    assert len(theirs) == len(ours) == 1
    assert ours == theirs
    if len(message) < 5000:
        assert outcome.accepted, outcome.reply
        assert handler.received[0] == handler.received[1]
    else:  # aiosmtpd refuses the line for good, and so do we
        assert not outcome.accepted and outcome.permanent and outcome.code == 500, outcome


def _edition(**changes: Any) -> EditionMail:
    fields: dict[str, Any] = {
        "subject": "Dots", "from_addr": "News <news@example.org>", "reply_to": None,
        "list_id": "news.lists.example.org", "list_name": "News",
        "text": "Hello {{name}}\n.a line with a leading dot\n.\n..\nBye {{unsubscribe_url}}\n",
        "html": "<p>Hi {{name}}</p>\n.dot line in the html\n<p>{{view_url}}</p>",
    }
    return EditionMail(**(fields | changes))


def _reader(**changes: Any) -> Personalisation:
    fields: dict[str, Any] = {
        "to_email": "alice@example.net", "to_name": "Alice",
        "unsubscribe_url": "https://lists.example.org/unsubscribe/tok",
        "unsubscribe_mailto": "mailto:unsubscribe+tok@bounce.example.org",
        "preferences_url": "https://lists.example.org/preferences/tok", "message_id": "<1.a@example.org>",
        "view_url": "https://lists.example.org/view/tok",
    }
    return Personalisation(**(fields | changes))


COPIES = {
    "dots in the template": (_edition(), _reader()),
    "a name starting with a dot": (_edition(), _reader(to_name=".Dotty")),
    "a long name whose second line starts with a dot": (_edition(), _reader(to_name="a" * 75 + ".b")),
    "a non-ASCII name with a dot": (_edition(), _reader(to_name=".Zoë " + "é" * 40 + ".")),
    "no dot anywhere": (_edition(text="Hello {{name}}\n", html="<p>Hi {{name}}</p>"), _reader()),
    "a derived text part": (_edition(text=None), _reader(to_name=".Dotty")),
}


@pytest.mark.parametrize(("mail", "reader"), COPIES.values(), ids=COPIES.keys())
async def test_composed_copies_carry_the_data_form_aiosmtplib_would_have_made(
    server: tuple[_Keep, Relay], mail: EditionMail, reader: Personalisation
) -> None:
    handler, relay = server
    message, data = prepare(mail, message_id_domain="example.org").render_data(reader, date="Tue, 25 Nov 2025 "
                                                                                            "07:46:00 +0000")
    assert data == data_form(message)
    await _through_aiosmtplib(relay.port, "bounce@example.org", "alice@example.net", message)
    theirs = relay.transactions()
    transport = SmtpTransport(f"smtp://127.0.0.1:{relay.port}", size=1)
    outcome = await transport.send("bounce@example.org", "alice@example.net", message, data=data)
    await transport.close()
    assert outcome.accepted, outcome.reply
    assert relay.transactions() == theirs
    assert handler.received == [message, message]


def test_a_copy_without_dotted_lines_is_its_own_data_form() -> None:
    mail = prepare(_edition(text="Hello {{name}}\n", html="<p>Hi {{name}}</p>"), message_id_domain="example.org")
    message, data = mail.render_data(_reader())
    assert data is message, "the usual copy is not copied or scanned once more on its way out"


async def test_a_refusal_after_the_data_is_permanent_on_5xx_and_keeps_the_connection(
    server: tuple[_Keep, Relay],
) -> None:
    handler, relay = server
    message = TRICKY["lines starting with dots"]
    transport = SmtpTransport(f"smtp://127.0.0.1:{relay.port}", size=1)
    try:
        handler.reply = "554 5.6.0 Content rejected"
        refused = await transport.send("bounce@example.org", "b@example.org", message, data=data_form(message))
        handler.reply = "451 4.3.0 Try again later"
        later = await transport.send("bounce@example.org", "b@example.org", message, data=data_form(message))
        handler.reply = "250 Accepted"
        accepted = await transport.send("bounce@example.org", "b@example.org", message, data=data_form(message))
    finally:
        await transport.close()
    assert (refused.accepted, refused.permanent, refused.code) == (False, True, 554)
    assert refused.reply == "554 5.6.0 Content rejected"
    assert (later.accepted, later.permanent, later.code) == (False, False, 451)
    assert accepted.accepted
    assert relay.written.count(b"EHLO") == 1, "one connection carried all three, reset after each refusal"


async def test_a_server_hanging_up_mid_data_is_a_retry(server: tuple[_Keep, Relay]) -> None:
    handler, relay = server
    handler.hang_up = True
    transport = SmtpTransport(f"smtp://127.0.0.1:{relay.port}", size=1)
    try:
        outcome = await transport.send("bounce@example.org", "b@example.org", b"Subject: x\r\n\r\nhi\r\n")
    finally:
        await transport.close()
    assert not outcome.accepted and not outcome.permanent
    assert outcome.reply.startswith("connection lost")


async def test_no_answer_to_the_data_is_a_retry_on_a_fresh_connection(server: tuple[_Keep, Relay]) -> None:
    handler, relay = server
    handler.stall = 2.0
    transport = SmtpTransport(f"smtp://127.0.0.1:{relay.port}", size=1, timeout=0.3)
    try:
        outcome = await transport.send("bounce@example.org", "b@example.org", b"Subject: x\r\n\r\nhi\r\n")
        handler.stall = 0.0
        again = await transport.send("bounce@example.org", "b@example.org", b"Subject: x\r\n\r\nhi\r\n")
    finally:
        await transport.close()
    assert not outcome.accepted and not outcome.permanent
    assert again.accepted, "the stalled connection was dropped, not reused out of step"
