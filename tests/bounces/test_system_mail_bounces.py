"""System mails' bounces: a confirmation mail goes out with a signed VERP return path, and its hard
bounce, received by the real SMTP receiver, drops the pending sign-up and never an active reader."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiosmtplib
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.bounces.receiver import BounceReceiver
from service.db.pool import open_database
from service.metrics import Metrics
from service.settings import Settings
from service.tokens import Purpose, TokenSigner
from tests.bounces.sends import dsn_mail, fetch, reader_state, value
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink
from tests.support.worker import running_worker

Client = AsyncTestClient[Litestar]
UNKNOWN = {"action": "failed", "status": "5.1.1", "diagnostic": "550 5.1.1 User unknown"}
FULL = {"action": "failed", "status": "4.2.2", "diagnostic": "452 4.2.2 Mailbox full"}


@pytest.fixture
async def receiver(settings: Settings) -> AsyncIterator[BounceReceiver]:
    db = await open_database(settings.database_url or "", pool_size=2, run_migrations=False)
    server = BounceReceiver(settings, db, TokenSigner(settings.secret_keys), Metrics(), host="127.0.0.1", port=0)
    try:
        async with server:
            yield server
    finally:
        await db.close()


async def _confirmation_return_path(
    client: Client, app: Litestar, smtp_sink: SmtpSink, headers: dict[str, str], email: str, lists: list[str]
) -> str:
    """Ask for ``lists`` for ``email``, let the worker send the confirmation; its envelope sender."""
    response = await client.post("/v1/subscriptions", json={"email": email, "lists": lists}, headers=headers)
    assert response.status_code == 202, response.text
    async with running_worker(app):
        (received,) = await smtp_sink.wait_for(1)
    return received.mail_from


async def _bounce(receiver: BounceReceiver, return_path: str, email: str, fields: dict[str, str]) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=receiver.port, start_tls=False) as smtp:
        errors, reply = await smtp.sendmail("", [return_path], dsn_mail(return_path, email, **fields))
    assert errors == {} and reply.startswith("2.0.0"), reply


async def test_a_confirmation_mail_has_a_return_path_naming_it(
    client: Client, app: Litestar, smtp_sink: SmtpSink, admin_headers: dict[str, str], settings: Settings
) -> None:
    await seed_readers(settings.database_url or "", 0)
    return_path = await _confirmation_return_path(client, app, smtp_sink, admin_headers, "new@example.net", ["news"])
    local, _, domain = return_path.partition("@")
    assert local.startswith("bounce+") and domain == settings.effective_bounce_domain
    mail_id = await value(settings.database_url or "", "SELECT id FROM system_mails")
    assert TokenSigner(settings.secret_keys).verify(Purpose.SYSTEM_MAIL, local.removeprefix("bounce+")) == (mail_id,)


async def test_a_hard_bounce_of_a_confirmation_drops_the_pending_signup(
    client: Client, app: Litestar, smtp_sink: SmtpSink, admin_headers: dict[str, str], settings: Settings,
    receiver: BounceReceiver,
) -> None:  # fmt: skip
    url = settings.database_url or ""
    await seed_readers(url, 0)
    return_path = await _confirmation_return_path(client, app, smtp_sink, admin_headers, "typo@example.net", ["news"])
    await _bounce(receiver, return_path, "typo@example.net", UNKNOWN)
    assert await fetch(url, "SELECT id FROM subscribers WHERE email = 'typo@example.net'") == []
    assert await value(url, "SELECT count(*) FROM subscriptions") == 0


async def test_an_active_readers_confirmation_bounce_keeps_the_reader(
    client: Client, app: Litestar, smtp_sink: SmtpSink, admin_headers: dict[str, str], settings: Settings,
    receiver: BounceReceiver,
) -> None:  # fmt: skip
    url = settings.database_url or ""
    (alice,) = await seed_readers(url, 1)
    return_path = await _confirmation_return_path(client, app, smtp_sink, admin_headers, alice, ["training"])
    assert (await reader_state(url, alice))["lists"] == ["confirmed", "pending"]
    await _bounce(receiver, return_path, alice, UNKNOWN)
    state = await reader_state(url, alice)
    assert (state["status"], state["lists"], state["suppressed"]) == ("active", ["confirmed"], None)


async def test_a_soft_bounce_of_a_confirmation_drops_nothing(
    client: Client, app: Litestar, smtp_sink: SmtpSink, admin_headers: dict[str, str], settings: Settings,
    receiver: BounceReceiver,
) -> None:  # fmt: skip
    url = settings.database_url or ""
    await seed_readers(url, 0)
    return_path = await _confirmation_return_path(client, app, smtp_sink, admin_headers, "full@example.net", ["news"])
    await _bounce(receiver, return_path, "full@example.net", FULL)
    assert await value(url, "SELECT status FROM subscribers WHERE email = 'full@example.net'") == "pending"
