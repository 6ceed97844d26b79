"""Transports against real servers: SMTP with STARTTLS, implicit TLS and credentials; the Maildir outbox."""

from __future__ import annotations

import datetime
import mailbox
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.delivery.transport import MaildirTransport, SmtpTransport
from tests.support.smtp import free_port

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


class _Keep:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        assert session.authenticated, "the transport must log in before sending"
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Accepted"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"news", b"p@ss:word")
    # handled=False: aiosmtpd answers a failure with 535 itself (True would leave the client waiting).
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, trusted by the test through SSL_CERT_FILE."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """Make the default trust store (what the transport uses) trust our certificate; the server's context."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    return server_context


@pytest.fixture
def starttls_server(trusted: ssl.SSLContext) -> Iterator[tuple[int, _Keep]]:
    """Plain SMTP that offers STARTTLS and only allows AUTH after it."""
    handler, port = _Keep(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=trusted, require_starttls=True,
                            authenticator=_authenticator, auth_required=True)
    controller.start()
    yield port, handler
    controller.stop()


@pytest.fixture
def smtps_server(trusted: ssl.SSLContext) -> Iterator[tuple[int, _Keep]]:
    """SMTP over implicit TLS."""
    handler, port = _Keep(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=trusted,
                            authenticator=_authenticator, auth_required=True, auth_require_tls=False,
                            server_hostname="localhost")
    controller.start()
    yield port, handler
    controller.stop()


async def test_starttls_with_credentials(starttls_server: tuple[int, _Keep]) -> None:
    port, handler = starttls_server
    transport = SmtpTransport(f"smtp+starttls://news:p%40ss%3Aword@localhost:{port}", size=2)
    for _ in range(3):  # the pooled connection is reused
        outcome = await transport.send("bounce+t@example.org", "b@example.org", MESSAGE)
        assert outcome.accepted, outcome.reply
    await transport.close()
    assert [(f, r) for f, r, _ in handler.received] == [("bounce+t@example.org", ["b@example.org"])] * 3
    assert handler.received[0][2].endswith(b"hello\r\n")


# aiosmtpd does not count implicit TLS as TLS for its AUTH check, so that check is off here.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_implicit_tls_with_credentials(smtps_server: tuple[int, _Keep]) -> None:
    port, handler = smtps_server
    transport = SmtpTransport(f"smtps://news:p%40ss%3Aword@localhost:{port}")
    outcome = await transport.send("bounce+t@example.org", "b@example.org", MESSAGE)
    await transport.close()
    assert outcome.accepted, outcome.reply
    assert len(handler.received) == 1


async def test_wrong_credentials_are_refused_not_sent(starttls_server: tuple[int, _Keep]) -> None:
    port, handler = starttls_server
    transport = SmtpTransport(f"smtp+starttls://news:wrong@localhost:{port}")
    outcome = await transport.send("bounce+t@example.org", "b@example.org", MESSAGE)
    await transport.close()
    assert not outcome.accepted
    # The server's 535, not a timeout: the whole send stops (shared), since no copy can go.
    assert outcome.permanent and outcome.shared and outcome.reply.startswith("authentication failed"), outcome
    assert handler.received == []


async def test_an_untrusted_certificate_is_refused(starttls_server: tuple[int, _Keep], monkeypatch: pytest.MonkeyPatch) -> None:
    port, handler = starttls_server
    monkeypatch.delenv("SSL_CERT_FILE")
    transport = SmtpTransport(f"smtp+starttls://news:p%40ss%3Aword@localhost:{port}")
    outcome = await transport.send("bounce+t@example.org", "b@example.org", MESSAGE)
    await transport.close()
    assert not outcome.accepted and not outcome.permanent, "a TLS failure is retried, never sent in clear"
    assert handler.received == []


async def test_maildir_outbox_keeps_the_envelope(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path / "outbox")
    outcome = await transport.send("bounce+t@example.org", "b@example.org", MESSAGE)
    assert outcome.accepted
    (message,) = mailbox.Maildir(str(tmp_path / "outbox"), create=False)
    assert message["Return-Path"] == "<bounce+t@example.org>"
    assert message["Delivered-To"] == "b@example.org"
    assert str(message.get_payload()).strip() == "hello"


async def test_maildir_outbox_under_folders_not_made_yet(tmp_path: Path) -> None:
    # A fresh LETTERBOX_VAR_DIR: the outbox's parents do not exist until the first copy.
    transport = MaildirTransport(tmp_path / "new" / "var" / "outbox")
    outcome = await transport.send("bounce+t@example.org", "b@example.org", MESSAGE)
    assert outcome.accepted, outcome.reply
    assert len(mailbox.Maildir(str(tmp_path / "new" / "var" / "outbox"), create=False)) == 1


class _Peers:
    """Keeps which connection (client port) carried each message."""

    def __init__(self) -> None:
        self.peers: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.peers.append(session.peer)
        return "250 Accepted"


async def test_a_connection_carries_at_most_its_share_of_messages() -> None:
    handler = _Peers()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    transport = SmtpTransport(f"smtp://127.0.0.1:{port}", size=1, messages_per_connection=3)
    try:
        for n in range(7):
            outcome = await transport.send("a@example.org", f"r{n}@example.org", MESSAGE)
            assert outcome.accepted, outcome
    finally:
        await transport.close()
        controller.stop()
    per_connection = [handler.peers.count(peer) for peer in dict.fromkeys(handler.peers)]
    assert per_connection == [3, 3, 1], "a relay that counts transactions never sees a fourth on one connection"
