"""DKIM for edition copies: signed in the signing process, kept in their DATA form, verified by
dkimpy on what a real SMTP server received; the key is loaded once however many domains sign; a
signing process that dies is replaced, and one that is closed is gone."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
from pathlib import Path
from typing import Any

import dkim
import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

import service.delivery.dkim as dkim_module
import service.delivery.dkim_process as dkim_process
from service.delivery.dkim_keys import DkimKeys
from service.delivery.transport import SmtpTransport
from service.mail.compose import EditionMail, Personalisation, PreparedMail, RenderedCopy, prepare
from tests.support.dkim import dkim_key
from tests.support.smtp import free_port

DOMAINS = ("example.org", "news.example.net")
_MAILS: dict[str, PreparedMail] = {}


def _dns_for(key_file: Path, selector: str) -> Any:
    """A dnsfunc publishing ``key_file``'s public key under ``selector`` for every test domain."""
    public = load_pem_private_key(key_file.read_bytes(), password=None).public_key()
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public.public_bytes(Encoding.DER,
                                                                          PublicFormat.SubjectPublicKeyInfo))
    names = {f"{selector}._domainkey.{domain}.".encode() for domain in DOMAINS}

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name in names, name
        return record

    return dns


class _Keep:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.original_content)
        return "250 Accepted"


def _copy(domain: str, n: int) -> RenderedCopy:
    mail = _MAILS.get(domain) or _MAILS.setdefault(domain, prepare(EditionMail(
        subject="Signed", from_addr=f"News <news@{domain}>", reply_to=None, list_id="news.lists.example.org",
        list_name="News", text="Hello {{name}}\n.a dotted line\n", html="<p>Hi {{name}}</p>\n.dotted\n",
    ), message_id_domain=domain))
    return mail.render_copy(Personalisation(
        to_email=f"reader{n}@example.net", to_name=f".Reader {n}",
        unsubscribe_url=f"https://lists.example.org/unsubscribe/t{n}",
        unsubscribe_mailto=f"mailto:unsubscribe+t{n}@bounce.example.org",
        preferences_url=f"https://lists.example.org/preferences/t{n}", message_id=f"<{n}.x@{domain}>",
    ))


async def test_copies_signed_in_the_signing_process_verify_as_received(tmp_path: Path) -> None:
    key_file, _ = dkim_key(tmp_path, selector="lb1")
    dns = _dns_for(key_file, "lb1")
    keys = DkimKeys("lb1", key_file.read_bytes())
    handler = _Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    transport = SmtpTransport(f"smtp://127.0.0.1:{controller.port}", size=2)
    try:
        rendered = [(domain, _copy(domain, n)) for n, domain in enumerate(DOMAINS * 6)]
        headers = await asyncio.gather(*(keys.header_for_copy(copy.pieces, _MAILS[domain].shared, domain)
                                         for domain, copy in rendered))
        copies = [(domain, copy.message, copy.data) for domain, copy in rendered]
        for header, (_, message, data) in zip(headers, copies, strict=True):
            assert data != message, "the copies have dotted lines, so their DATA form differs"
            outcome = await transport.send("bounce@example.org", "r@example.net", header + message,
                                           data=header + data)
            assert outcome.accepted, outcome.reply
    finally:
        await transport.close()
        controller.stop()
        await keys.close()
    assert len(handler.received) == len(copies)
    for (domain, message, _), received in zip(copies, handler.received, strict=True):
        assert received.endswith(message)
        assert f"d={domain};".encode() in received
        assert dkim.verify(received, dnsfunc=dns), "dkimpy verifies what the server received"


def test_the_key_is_loaded_once_for_every_domain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file, _ = dkim_key(tmp_path, selector="lb1")
    loads: list[str] = []
    real = dkim_module._load_key

    def counted(pem: bytes, what: str) -> Any:
        loads.append(what)
        return real(pem, what)

    monkeypatch.setattr(dkim_module, "_load_key", counted)
    keys = DkimKeys("lb1", key_file.read_bytes())
    dns = _dns_for(key_file, "lb1")
    for domain in DOMAINS:
        signed = keys.sign(_copy(domain, 1).message, domain)
        assert dkim.verify(signed, dnsfunc=dns)
        assert keys.signer_for(domain).domain == domain
    assert len(loads) == 1, loads


def test_another_domain_must_still_be_a_domain(tmp_path: Path) -> None:
    key_file, _ = dkim_key(tmp_path)
    keys = DkimKeys("lb1", key_file.read_bytes())
    with pytest.raises(ValueError, match="not a DNS domain name"):
        keys.signer_for("not a domain")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_killed_signing_process_is_replaced_and_a_closed_one_ends(tmp_path: Path) -> None:
    key_file, _ = dkim_key(tmp_path, selector="lb1")
    dns = _dns_for(key_file, "lb1")
    keys = DkimKeys("lb1", key_file.read_bytes())
    copy = _copy("example.org", 1)
    message, shared = copy.message, _MAILS["example.org"].shared
    try:
        assert dkim.verify(await keys.header_for_copy(copy.pieces, shared, "example.org") + message, dnsfunc=dns)
        first = keys._process.pid
        assert first is not None and _running(first)
        os.kill(first, signal.SIGKILL)
        # Copies in flight when it died, and after, are signed by a new process.
        headers = await asyncio.gather(*(keys.header_for_copy(copy.pieces, shared, domain) for domain in DOMAINS * 4))
        second = keys._process.pid
        assert second not in (None, first)
        for header, domain in zip(headers, DOMAINS * 4, strict=True):
            assert dkim.verify(header + message, dnsfunc=dns), domain
        with pytest.raises(ValueError, match="no From field"):
            await keys.header_for_copy([b"Subject: no sender\r\n\r\nhello\r\n"], [True], "example.org")
        with pytest.raises(ValueError, match="no From field"):  # the same, signed from the whole message
            await keys.header_for_copy([b"Subject: no sender\r\n", b"\r\nhello\r\n"], [True, False], "example.org")
        signature = await keys.header_for_copy(copy.pieces, shared, "example.org")
        assert dkim.verify(signature + message, dnsfunc=dns), "it signs on"
    finally:
        await keys.close()
    assert second is not None and not _running(second)
    assert keys._process.pid is None


async def test_pieces_are_sent_once_and_forgotten_when_numbers_run_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dkim_process, "_MAX_PIECES", 3)  # numbers handed out afresh every few pieces
    key_file, _ = dkim_key(tmp_path, selector="lb1")
    dns = _dns_for(key_file, "lb1")
    keys = DkimKeys("lb1", key_file.read_bytes())
    editions = [prepare(EditionMail(
        subject=f"Edition {n}", from_addr="News <news@example.org>", reply_to=None, list_id="news.lists.example.org",
        list_name="News", text=f"Edition {n}  for {{{{name}}}}\n", html=f"<p>{n}\t{{{{name}}}}</p>",
    ), message_id_domain="example.org") for n in range(4)]
    try:
        for n in range(12):
            mail = editions[n % 4]
            copy = mail.render_copy(Personalisation(
                to_email=f"r{n}@example.net", to_name=f"Reader  {n}", unsubscribe_url=f"https://l.example.org/u/{n}",
                unsubscribe_mailto=f"mailto:u+{n}@example.org", preferences_url="https://l.example.org/p",
                message_id=f"<{n}.f@example.org>"))
            header = await keys.header_for_copy(copy.pieces, mail.shared, "example.org")
            assert dkim.verify(header + copy.message, dnsfunc=dns), n
    finally:
        await keys.close()
