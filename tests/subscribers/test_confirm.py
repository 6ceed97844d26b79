"""Double opt-in end to end: the form, the mail through the real worker and SMTP server, the button."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.db.pool import Database
from service.runtime import runtime_of
from service.settings import Settings
from service.tokens import Purpose, TokenSigner
from tests.conftest import replace_settings
from tests.subscribers.conftest import Client, link_in, rows, subscribe, value
from tests.subscribers.test_form import assert_security_headers
from tests.support.clock import FakeClock
from tests.support.smtp import SmtpSink
from tests.support.worker import running_worker

pytestmark = pytest.mark.usefixtures("demo")


async def _mail_for(app: Litestar, smtp_sink: SmtpSink, count: int) -> None:
    async with running_worker(app):
        await smtp_sink.wait_for(count)


async def test_subscribe_mail_confirm(client: Client, app: Litestar, db: Database, smtp_sink: SmtpSink) -> None:
    response = await subscribe(client, "ann@example.org", lists=("newsletter", "training"), name="Ann Smith",
                               agency="police", role="practitioner", headers={"User-Agent": "Firefox/140"})
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    person = (await rows(db, "SELECT * FROM subscribers"))[0]
    assert (person["email"], person["name"], person["agency"], person["role"]) == (
        "ann@example.org", "Ann Smith", "police", "practitioner")
    assert person["status"] == "pending" and person["confirmed_at"] is None
    subs = await rows(db, "SELECT l.slug, s.status FROM subscriptions s JOIN lists l ON l.id = s.list_id ORDER BY 1")
    assert [tuple(r) for r in subs] == [("newsletter", "pending"), ("training", "pending")]
    (consent,) = await rows(db, "SELECT * FROM consents")
    assert consent["action"] == "subscribe" and consent["source"] == "form"
    assert sorted(consent["lists"]) == ["newsletter", "training"]
    assert consent["user_agent"] == "Firefox/140" and consent["wording_version"] == "subscribe-form-1"
    assert consent["created_at"] is not None

    await _mail_for(app, smtp_sink, 1)
    (received,) = smtp_sink.messages_for("ann@example.org")
    mail = received.parsed()
    assert mail["Subject"] == "Please confirm your subscription"
    assert mail["From"] == "Partnership News <news@example.org>"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Partnership newsletter" in text and "Training and events" in text
    assert "Ann Smith" not in text, "nothing the requester typed is mailed to the address"
    confirm = link_in(received, "confirm")

    page = await client.get(confirm)
    assert page.status_code == 200 and "<form method=\"post\">" in page.text
    assert_security_headers(page.headers, token_page=True)
    assert await value(db, "SELECT status FROM subscribers") == "pending", "following the link changes nothing"

    done = await client.post(confirm)
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert_security_headers(done.headers, token_page=True)
    person = (await rows(db, "SELECT * FROM subscribers"))[0]
    assert person["status"] == "active" and person["confirmed_at"] is not None
    assert {r["status"] for r in await rows(db, "SELECT status FROM subscriptions")} == {"confirmed"}
    actions = [r["action"] for r in await rows(db, "SELECT action FROM consents ORDER BY id")]
    assert actions == ["subscribe", "confirm"]

    again = await client.post(confirm)
    assert again.status_code == 200, "re-using the token is harmless"
    assert await value(db, "SELECT count(*) FROM consents") == 2
    assert await value(db, "SELECT confirmed_at FROM subscribers") == person["confirmed_at"]


async def _status_of(db: Database, email: str) -> str | None:
    found: str | None = await value(db, "SELECT status FROM subscribers WHERE lower(email) = lower($1)", email)
    return found


async def test_no_enumeration_new_pending_active_and_suppressed_look_the_same(
    client: Client, app: Litestar, db: Database, smtp_sink: SmtpSink
) -> None:
    await db.pool.execute(
        "INSERT INTO subscribers (email, status, confirmed_at) VALUES ('active@example.org', 'active', now())")
    await db.pool.execute(
        "INSERT INTO subscriptions (list_id, subscriber_id, status) "
        "SELECT l.id, s.id, 'confirmed' FROM lists l, subscribers s WHERE l.slug = 'newsletter'")
    await db.pool.execute(
        "INSERT INTO suppressions (email_hash, email, reason) VALUES (email_hash('gone@example.org'), NULL, 'erasure')")
    await subscribe(client, "pending@example.org")

    answers: dict[str, httpx.Response] = {}
    for email in ("new@example.org", "pending@example.org", "active@example.org", "gone@example.org"):
        answers[email] = await subscribe(client, email)
    first = answers["new@example.org"]
    for email, response in answers.items():
        assert response.status_code == first.status_code == 200, email
        assert response.text == first.text, email
        assert {k: v for k, v in response.headers.items() if k not in {"date", "x-request-id"}} == {
            k: v for k, v in first.headers.items() if k not in {"date", "x-request-id"}}, email

    await _mail_for(app, smtp_sink, 3)
    sent_to = sorted(r for m in smtp_sink.received for r in m.rcpt_tos)
    assert sent_to == ["new@example.org", "pending@example.org", "pending@example.org"]
    assert await _status_of(db, "gone@example.org") is None, "a suppressed address gets no row"
    assert await _status_of(db, "active@example.org") == "active"


async def test_an_active_reader_gets_a_mail_only_for_a_new_list(
    client: Client, app: Litestar, db: Database, smtp_sink: SmtpSink
) -> None:
    await subscribe(client, "ann@example.org")
    await _mail_for(app, smtp_sink, 1)
    await client.post(link_in(smtp_sink.received[0], "confirm"))
    assert (await subscribe(client, "ann@example.org", name="Someone Else")).status_code == 200
    assert (await subscribe(client, "ann@example.org", lists=("newsletter", "training"))).status_code == 200
    await _mail_for(app, smtp_sink, 2)
    assert len(smtp_sink.received) == 2
    text = smtp_sink.received[1].parsed().get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Training and events" in text and "Partnership newsletter" not in text
    assert await value(db, "SELECT name FROM subscribers") == "", "a stranger cannot change an active reader's name"
    await client.post(link_in(smtp_sink.received[1], "confirm"))
    statuses = await rows(db, "SELECT l.slug, s.status FROM subscriptions s JOIN lists l ON l.id = s.list_id ORDER BY 1")
    assert [tuple(r) for r in statuses] == [("newsletter", "confirmed"), ("training", "confirmed")]


async def test_tampered_and_expired_links(
    client: Client, app: Litestar, db: Database, smtp_sink: SmtpSink, clock: FakeClock
) -> None:
    await subscribe(client, "ann@example.org")
    await _mail_for(app, smtp_sink, 1)
    confirm = link_in(smtp_sink.received[0], "confirm")
    token = confirm.removeprefix("/confirm/")
    tampered = "/confirm/" + token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    other_id = "/confirm/" + "2" + token[1:]
    unsubscribe_token = TokenSigner(runtime_of(app.state).settings.secret_keys).sign(Purpose.UNSUBSCRIBE, 1, None, None)
    for path in (tampered, other_id, "/confirm/nonsense", f"/confirm/{unsubscribe_token}"):
        for method in ("GET", "POST"):
            response = await client.request(method, path)
            assert response.status_code == 400, (method, path)
            assert "This link does not work" in response.text
            assert_security_headers(response.headers, token_page=True)
    assert await value(db, "SELECT status FROM subscribers") == "pending"

    clock.advance(8 * 24 * 3600)
    for method in ("GET", "POST"):
        expired = await client.request(method, confirm)
        assert expired.status_code == 410
        assert "This link has expired" in expired.text and 'href="/subscribe"' in expired.text
    assert await value(db, "SELECT status FROM subscribers") == "pending"
    assert await value(db, "SELECT count(*) FROM consents WHERE action = 'confirm'") == 0


async def test_a_confirmation_link_for_someone_no_longer_on_file_has_expired(client: Client, db: Database,
                                                                             app: Litestar) -> None:
    token = TokenSigner(runtime_of(app.state).settings.secret_keys, now=runtime_of(app.state).clock).sign(Purpose.CONFIRM, 999)
    response = await client.post(f"/confirm/{token}")
    assert response.status_code == 410


async def test_key_rotation(client: Client, app: Litestar, db: Database, settings: Settings, clock: FakeClock,
                            smtp_sink: SmtpSink) -> None:
    await subscribe(client, "ann@example.org")
    await _mail_for(app, smtp_sink, 1)
    confirm = link_in(smtp_sink.received[0], "confirm")
    new_key = "a-brand-new-secret-key-0123456789"

    retired = create_app(replace_settings(settings, secret_keys=(new_key,)), clock=clock)
    async with AsyncTestClient(retired, base_url="https://news.example.org") as other:
        assert (await other.post(confirm)).status_code == 400, "a retired key no longer verifies"
    assert await value(db, "SELECT status FROM subscribers") == "pending"

    rotated = create_app(replace_settings(settings, secret_keys=(new_key, settings.secret_keys[0])), clock=clock)
    async with AsyncTestClient(rotated, base_url="https://news.example.org") as other:
        assert (await other.post(confirm)).status_code == 200, "an old key still in the list verifies"
        new_token = TokenSigner((new_key,), now=clock).sign(Purpose.CONFIRM, 1)
        assert (await other.get(f"/confirm/{new_token}")).status_code == 200, "the first key signs"
    assert await value(db, "SELECT status FROM subscribers") == "active"
