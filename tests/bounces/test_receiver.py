"""The built-in SMTP receiver, with a real SMTP client (aiosmtplib) on loopback: VERP bounces from the
corpus, refused recipients and forged tokens (550), oversize mail (552), our own failures (451), and the
``mailto:`` unsubscribe of a real edition end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.utils import parseaddr

import aiosmtplib
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.bounces.receiver import BounceReceiver, run_receiver
from service.db.pool import Database, open_database
from service.metrics import Metrics
from service.runtime import assemble
from service.settings import Settings, SettingsError
from service.tokens import Purpose, TokenSigner
from tests.bounces.sends import corpus_mail, fetch, reader_state, sent_edition, value
from tests.conftest import replace_settings
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink, free_port
from tests.support.worker import running_worker

Client = AsyncTestClient[Litestar]
DOMAIN = "news.example.org"  # the bounce domain: the host of the test settings' public URL
LIMIT = 64 * 1024


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """A pool on the test's own event loop, where the receiver runs."""
    database = await open_database(settings.database_url or "", pool_size=2, run_migrations=False)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def receiver(settings: Settings, db: Database) -> AsyncIterator[BounceReceiver]:
    """The receiver on a free loopback port, refusing mail over 64 KiB."""
    server = BounceReceiver(
        settings, db, TokenSigner(settings.secret_keys), Metrics(), host="127.0.0.1", port=0, max_bytes=LIMIT
    )
    async with server:
        yield server


def _verp(settings: Settings, delivery_id: int) -> str:
    return f"bounce+{TokenSigner(settings.secret_keys).sign(Purpose.VERP, delivery_id)}@{DOMAIN}"


async def _send(receiver: BounceReceiver, message: bytes, *recipients: str) -> tuple[dict[str, object], str]:
    """Send as a bounce is sent: with the null reverse path ``MAIL FROM:<>``."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=receiver.port, start_tls=False) as smtp:
        errors, reply = await smtp.sendmail("", list(recipients), message)
    return dict(errors), reply


async def test_a_corpus_bounce_to_a_verp_address_bounces_that_copy(
    receiver: BounceReceiver, settings: Settings
) -> None:
    url = settings.database_url or ""
    alice, bob = await seed_readers(url, 2)
    edition_id, (alice_copy, _) = await sent_edition(url, [alice, bob])
    verp = _verp(settings, alice_copy)
    raw = corpus_mail("lhost-postfix-01.eml", {"shironeko@mx.example.jp": verp, "kijitora@example.org": alice})
    errors, reply = await _send(receiver, raw, verp)
    assert errors == {} and reply.startswith("2.0.0")
    assert await reader_state(url, alice) == {
        "status": "bounced", "soft_bounces": 0, "suppressed": "hard_bounce", "lists": ["confirmed"],
    }  # fmt: skip
    assert (await reader_state(url, bob))["status"] == "active"
    (event,) = await fetch(url, "SELECT delivery_id, edition_id, kind, status, source FROM bounce_events")
    assert dict(event) == {
        "delivery_id": alice_copy, "edition_id": edition_id, "kind": "hard", "status": "5.1.1",
        "source": "smtp-receiver",
    }  # fmt: skip


async def test_only_the_copy_the_token_names_can_bounce(receiver: BounceReceiver, settings: Settings) -> None:
    url = settings.database_url or ""
    alice, bob = await seed_readers(url, 2)
    _, (alice_copy, _) = await sent_edition(url, [alice, bob])
    verp = _verp(settings, alice_copy)
    # A report naming Bob too, sent with Alice's genuine token: Bob is not touched.
    raw = corpus_mail("lhost-exim-02.eml", {"kijitora@example.jp": alice, "sabatora@example.jp": bob})
    await _send(receiver, raw, verp)
    assert (await reader_state(url, alice))["status"] == "bounced"
    assert (await reader_state(url, bob))["status"] == "active"
    assert await value(url, "SELECT count(*) FROM bounce_events") == 1


async def test_a_complaint_with_a_redacted_address_is_tied_by_the_token(
    receiver: BounceReceiver, settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1, lists=("news", "training"))
    _, (copy,) = await sent_edition(url, [alice])
    await _send(receiver, corpus_mail("arf-11.eml"), _verp(settings, copy))
    assert await reader_state(url, alice) == {
        "status": "complained", "soft_bounces": 0, "suppressed": "complaint", "lists": ["unsubscribed"] * 2,
    }  # fmt: skip


async def test_other_recipients_and_forged_tokens_are_refused_at_rcpt(
    receiver: BounceReceiver, settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    _, (copy,) = await sent_edition(url, [alice])
    genuine = TokenSigner(settings.secret_keys).sign(Purpose.VERP, copy)
    refused = [
        f"postmaster@{DOMAIN}",
        f"bounce@{DOMAIN}",
        f"bounce+{genuine}@elsewhere.example.net",
        f"someone+{genuine}@{DOMAIN}",
        f"bounce+{genuine[:-2]}xx@{DOMAIN}",  # tampered
        f"bounce+{TokenSigner(['another-installation-key-0123']).sign(Purpose.VERP, copy)}@{DOMAIN}",
        f"bounce+{TokenSigner(settings.secret_keys).sign(Purpose.UNSUBSCRIBE, copy, None, None)}@{DOMAIN}",
        f"unsubscribe+{genuine}@{DOMAIN}",  # a VERP token is no unsubscribe token
        "reader@example.org",
    ]
    raw = corpus_mail("lhost-postfix-01.eml", {"kijitora@example.org": alice})
    for address in refused:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as raised:
            await _send(receiver, raw, address)
        assert [r.code for r in raised.value.recipients] == [550], address
    assert (await reader_state(url, alice))["status"] == "active"
    assert await value(url, "SELECT count(*) FROM bounce_events") == 0
    # A refused recipient does not spoil a genuine one in the same transaction.
    errors, _ = await _send(receiver, raw, f"postmaster@{DOMAIN}", f"bounce+{genuine}@{DOMAIN.upper()}")
    assert list(errors) == [f"postmaster@{DOMAIN}"]
    assert (await reader_state(url, alice))["status"] == "bounced"


async def test_oversize_mail_is_refused_with_552(receiver: BounceReceiver, settings: Settings) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    _, (copy,) = await sent_edition(url, [alice])
    verp = _verp(settings, copy)
    raw = corpus_mail("lhost-postfix-01.eml", {"kijitora@example.org": alice})
    big = raw + b"\r\n" + (b"x" * 76 + b"\r\n") * (LIMIT // 78 + 10)
    # A client that declares the size is refused at MAIL FROM ...
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as declared:
        await _send(receiver, big, verp)
    assert declared.value.code == 552
    # ... and one that does not is refused at the end of DATA.
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=receiver.port, start_tls=False) as smtp:
        await smtp.ehlo()
        await smtp.mail("")
        await smtp.rcpt(verp)
        with pytest.raises(aiosmtplib.SMTPDataError) as sent:
            await smtp.data(big)
    assert sent.value.code == 552
    assert (await reader_state(url, alice))["status"] == "active"


async def test_auto_replies_and_unreadable_mail_are_accepted_and_ignored(
    receiver: BounceReceiver, settings: Settings
) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    _, (copy,) = await sent_edition(url, [alice])
    verp = _verp(settings, copy)
    auto_reply = (
        f"From: {alice}\r\nTo: {verp}\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\n"
        "I am away until Monday.\r\n"
    ).encode()
    for message in (auto_reply, b"Subject: hello\r\n\r\nnothing to see\r\n"):
        errors, _ = await _send(receiver, message, verp)
        assert errors == {}
    assert await value(url, "SELECT count(*) FROM bounce_events") == 0
    assert (await reader_state(url, alice))["status"] == "active"


async def test_our_own_failure_is_a_temporary_451(settings: Settings) -> None:
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    _, (copy,) = await sent_edition(url, [alice])
    closed = await open_database(url, pool_size=2, run_migrations=False)
    await closed.close()
    signer = TokenSigner(settings.secret_keys)
    async with BounceReceiver(settings, closed, signer, Metrics(), host="127.0.0.1", port=0) as server:
        raw = corpus_mail("lhost-postfix-01.eml", {"kijitora@example.org": alice})
        with pytest.raises(aiosmtplib.SMTPDataError) as raised:
            await _send(server, raw, _verp(settings, copy))
    assert raised.value.code == 451
    assert (await reader_state(url, alice))["status"] == "active"


async def test_mailto_unsubscribe_of_a_real_edition(
    client: Client,
    app: Litestar,
    admin_headers: dict[str, str],
    settings: Settings,
    smtp_sink: SmtpSink,
    receiver: BounceReceiver,
) -> None:
    url = settings.database_url or ""
    emails = await seed_readers(url, 2, lists=("news", "training"))
    posted = await client.post(
        "/v1/editions",
        json={"subject": "Spring briefing", "html": "<p>Hello {{name}}</p>", "lists": ["news"]},
        headers={**admin_headers, "Idempotency-Key": "mailto"},
    )
    assert posted.status_code == 202, posted.text
    edition_id = posted.json()["id"]
    async with running_worker(app):
        received = await smtp_sink.wait_for(2)
    copy = next(item for item in received if item.rcpt_tos == [emails[0]])
    mailto = next(part.strip(" <>") for part in str(copy.parsed()["List-Unsubscribe"]).split(",") if "mailto:" in part)
    address = parseaddr(mailto.removeprefix("mailto:").split("?")[0])[1]
    request = f"From: {emails[0]}\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\n".encode()
    for _ in range(2):  # a repeat is harmless
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=receiver.port, start_tls=False) as smtp:
            errors, _ = await smtp.sendmail(emails[0], [address], request)
        assert errors == {}
    statuses = await fetch(
        url,
        "SELECT l.slug, s.status FROM subscriptions s JOIN lists l ON l.id = s.list_id "
        "JOIN subscribers p ON p.id = s.subscriber_id WHERE p.email = $1 ORDER BY l.slug",
        emails[0],
    )
    assert [tuple(r) for r in statuses] == [("news", "unsubscribed"), ("training", "confirmed")]
    consents = await fetch(url, "SELECT action, source FROM consents WHERE action = 'unsubscribe'")
    assert [tuple(r) for r in consents] == [("unsubscribe", "mailto")]
    shown = (await client.get(f"/v1/editions/{edition_id}", headers=admin_headers)).json()
    assert shown["unsubscribed"] == 1
    assert (await reader_state(url, emails[1]))["lists"] == ["confirmed", "confirmed"]


async def test_run_receiver_listens_until_stopped(settings: Settings, db: Database) -> None:
    with pytest.raises(SettingsError, match="LETTERBOX_BOUNCE_SMTP_PORT"):
        await run_receiver(assemble(settings, db), asyncio.Event())
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(run_receiver(assemble(replace_settings(settings, bounce_smtp_port=port), db), stop))
    for _ in range(100):
        try:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=2) as smtp:
                code, _ = await smtp.noop()
                assert code == 250
                break
        except (aiosmtplib.SMTPConnectError, OSError):
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("the receiver never listened")
    stop.set()
    await asyncio.wait_for(task, 10)
    with pytest.raises((aiosmtplib.SMTPConnectError, OSError)):
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=2):
            pass


async def test_a_proofs_mailto_unsubscribe_is_accepted_and_changes_nothing(
    settings: Settings, receiver: BounceReceiver
) -> None:
    url = settings.database_url or ""
    await seed_readers(url, 1)
    token = TokenSigner(settings.secret_keys).sign(Purpose.PROOF_UNSUBSCRIBE)
    address = f"unsubscribe+{token}@{settings.effective_bounce_domain}"
    request = f"From: editor@example.org\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\n".encode()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=receiver.port, start_tls=False) as smtp:
        errors, _ = await smtp.sendmail("editor@example.org", [address], request)
    assert errors == {}, "a mail client pressing a proof's mailto: gets no bounce"
    assert await value(url, "SELECT count(*) FROM consents WHERE action = 'unsubscribe'") == 0
    assert await value(url, "SELECT count(*) FROM subscriptions WHERE status = 'unsubscribed'") == 0
    # Anything else under unsubscribe+ is still refused at RCPT.
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=receiver.port, start_tls=False) as smtp:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await smtp.sendmail("x@example.org", [f"unsubscribe+forged@{settings.effective_bounce_domain}"], request)
