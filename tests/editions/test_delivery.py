"""Editions through the real worker into a real SMTP server: headers, personalisation, retries,
bounces, pause/resume, unsubscribe mid-send, and two workers sharing one queue."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import asyncpg
import dkim
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings
from service.tokens import Purpose, TokenSigner
from tests.conftest import replace_settings
from tests.editions.test_posting import edition
from tests.support.dkim import dkim_key
from tests.support.seed import seed_readers
from tests.support.smtp import SmtpSink
from tests.support.worker import running_worker

# The delivery worker end to end against a real SMTP server: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

Client = AsyncTestClient[Litestar]


async def _post(client: Client, headers: dict[str, str], key: str, **changes: Any) -> int:
    response = await client.post("/v1/editions", json=edition(**changes), headers={**headers, "Idempotency-Key": key})
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


async def _wait_status(
    client: Client, headers: dict[str, str], edition_id: int, status: str, within: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        shown: dict[str, Any] = (await client.get(f"/v1/editions/{edition_id}", headers=headers)).json()
        if shown["status"] == status:
            return shown
        await asyncio.sleep(0.05)
    raise AssertionError(f"edition never reached {status}: {shown}")


async def test_each_copy_is_personal_and_standards_correct(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    emails = await seed_readers(settings.database_url or "", 3)
    html = '<p>Dear {{name}},</p><p><a href="{{preferences_url}}">preferences</a> <a href="{{unsubscribe_url}}">leave</a></p>'
    edition_id = await _post(client, admin_headers, "h", html=html, text=None, reply_to="editor@example.org")
    async with running_worker(app):
        received = await smtp_sink.wait_for(3)
        shown = await _wait_status(client, admin_headers, edition_id, "done")
    assert shown["sent"] == 3 and shown["queued"] == 0
    signer = TokenSigner(settings.secret_keys)
    message_ids = set()
    for item in received:
        msg = item.parsed()
        (rcpt,) = item.rcpt_tos
        assert rcpt in emails
        assert msg["To"].addresses[0].addr_spec == rcpt
        assert msg["From"] == "Partnership News <news@example.org>"
        assert msg["Reply-To"] == "editor@example.org"
        assert msg["Subject"] == "November briefing"
        assert msg["Date"] and msg["MIME-Version"] == "1.0"
        assert msg["List-Id"] == "Newsletter <news.news.example.org>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        https_link, mailto_link = (part.strip(" <>") for part in str(msg["List-Unsubscribe"]).split(","))
        assert https_link.startswith("https://news.example.org/unsubscribe/")
        assert mailto_link.startswith("mailto:unsubscribe+") and "@news.example.org" in mailto_link
        message_ids.add(msg["Message-ID"])
        # The envelope sender is the signed VERP address naming this very delivery.
        local = item.mail_from.split("@")[0]
        assert local.startswith("bounce+") and item.mail_from.endswith("@news.example.org")
        (delivery_id,) = signer.verify(Purpose.VERP, local.removeprefix("bounce+"))
        conn = await asyncpg.connect(settings.database_url)
        owner = await conn.fetchval(
            "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.id = $1", delivery_id
        )
        await conn.close()
        assert owner == rcpt
        assert msg.get_content_type() == "multipart/alternative"
        text_part, html_part = msg.iter_parts()
        number = rcpt.removeprefix("reader").split("@")[0]
        assert f"Dear Reader {number}," in html_part.get_content()
        assert f"Dear Reader {number}," in text_part.get_content()
        assert https_link in html_part.get_content()
        assert "https://news.example.org/preferences/" in html_part.get_content()
    assert len(message_ids) == 3


async def test_unsubscribe_after_posting_stops_the_unsent_copy(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    emails = await seed_readers(settings.database_url or "", 3)
    edition_id = await _post(client, admin_headers, "u")
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute(
        "UPDATE subscriptions SET status = 'unsubscribed' WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = $1)",
        emails[1],
    )
    await conn.execute(
        "INSERT INTO suppressions (email_hash, email, reason) VALUES (email_hash($1), $1, 'hard_bounce')", emails[2]
    )
    await conn.close()
    async with running_worker(app):
        shown = await _wait_status(client, admin_headers, edition_id, "done")
    assert (shown["sent"], shown["skipped"]) == (1, 2)
    assert [m.rcpt_tos for m in smtp_sink.received] == [[emails[0]]]
    skipped = (
        await client.get(f"/v1/editions/{edition_id}/deliveries", params={"status": "skipped"}, headers=admin_headers)
    ).json()["items"]
    assert sorted(item["last_reply"] for item in skipped) == ["suppressed", "unsubscribed"]


async def test_temporary_refusals_are_retried_until_delivered_once(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    emails = await seed_readers(settings.database_url or "", 2)
    smtp_sink.script(emails[0], "451 4.7.1 Greylisted, try again", "421 4.3.2 Busy, come back later")
    fast = replace_settings(settings, retry_base_seconds=0.05, retry_max_seconds=0.2)
    edition_id = await _post(client, admin_headers, "r")
    async with running_worker(app, fast):
        shown = await _wait_status(client, admin_headers, edition_id, "done")
    assert shown["sent"] == 2 and shown["failed"] == 0
    assert len(smtp_sink.messages_for(emails[0])) == 1
    conn = await asyncpg.connect(settings.database_url)
    attempts = await conn.fetchval(
        "SELECT attempts FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = $1", emails[0]
    )
    await conn.close()
    assert attempts == 3
    metrics = (await client.get("/metrics")).text
    assert "letterbox_deliveries_retried_total 2.0" in metrics
    assert "letterbox_deliveries_sent_total 2.0" in metrics


async def test_attempts_run_out(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    emails = await seed_readers(settings.database_url or "", 1)
    smtp_sink.script(emails[0], *["451 4.4.1 No answer from host"] * 5)
    limited = replace_settings(settings, retry_base_seconds=0.01, retry_max_seconds=0.05, send_max_attempts=3)
    edition_id = await _post(client, admin_headers, "x")
    async with running_worker(app, limited):
        shown = await _wait_status(client, admin_headers, edition_id, "done")
    assert shown["failed"] == 1 and shown["sent"] == 0
    assert smtp_sink.received == []


async def test_a_5xx_fails_the_copy_and_suppresses_the_address(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    emails = await seed_readers(settings.database_url or "", 2)
    smtp_sink.script(emails[1], "550 5.1.1 No such user here")
    edition_id = await _post(client, admin_headers, "b")
    async with running_worker(app):
        shown = await _wait_status(client, admin_headers, edition_id, "done")
    assert (shown["sent"], shown["failed"], shown["bounced"]) == (1, 1, 1)
    conn = await asyncpg.connect(settings.database_url)
    person = await conn.fetchrow("SELECT status FROM subscribers WHERE email = $1", emails[1])
    suppression = await conn.fetchrow(
        "SELECT reason, detail FROM suppressions WHERE email_hash = email_hash($1)", emails[1]
    )
    await conn.close()
    assert person is not None and person["status"] == "bounced"
    assert suppression is not None and suppression["reason"] == "hard_bounce" and "550" in suppression["detail"]
    # The next edition does not even queue a copy for them.
    second = await client.post(
        "/v1/editions", json=edition(subject="Next"), headers={**admin_headers, "Idempotency-Key": "b2"}
    )
    assert second.json()["recipients"] == 1


async def test_pause_and_resume_never_send_twice(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    await seed_readers(settings.database_url or "", 40)
    smtp_sink.delay = 0.02
    slow = replace_settings(settings, worker_batch_size=5, smtp_concurrency=1)
    edition_id = await _post(client, admin_headers, "p")
    async with running_worker(app, slow):
        await smtp_sink.wait_for(5)
        paused = await client.post(f"/v1/editions/{edition_id}/pause", headers=admin_headers)
        assert paused.json()["status"] == "paused"
        await asyncio.sleep(0.5)
        during = len(smtp_sink.received)
        await asyncio.sleep(0.5)
        assert len(smtp_sink.received) == during < 40
        await client.post(f"/v1/editions/{edition_id}/resume", headers=admin_headers)
        shown = await _wait_status(client, admin_headers, edition_id, "done")
    assert shown["sent"] == 40
    recipients = [r.rcpt_tos[0] for r in smtp_sink.received]
    assert len(recipients) == len(set(recipients)) == 40


async def test_two_workers_share_the_queue_without_duplicates(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    await seed_readers(settings.database_url or "", 300)
    small = replace_settings(settings, worker_batch_size=20)
    other_app = create_app(small)
    edition_id = await _post(client, admin_headers, "w")
    async with AsyncTestClient(other_app):
        async with running_worker(app, small), running_worker(other_app, small):
            await smtp_sink.wait_for(300)
            await _wait_status(client, admin_headers, edition_id, "done")
    recipients = [r.rcpt_tos[0] for r in smtp_sink.received]
    assert len(recipients) == len(set(recipients)) == 300
    conn = await asyncpg.connect(settings.database_url)
    leased_by = await conn.fetchval("SELECT count(DISTINCT leased_by) FROM deliveries")
    await conn.close()
    assert leased_by == 2, "both workers should have taken part"


async def test_scheduled_editions_go_out_late_but_not_too_late(
    client: Client, app: Litestar, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink
) -> None:
    await seed_readers(settings.database_url or "", 2)
    late = await _post(client, admin_headers, "late", send_at="2099-01-01T00:00:00Z")
    stale = await _post(client, admin_headers, "stale", send_at="2099-01-01T00:00:00Z", subject="Old news")
    conn = await asyncpg.connect(settings.database_url)
    # As if the workers had been down: one is an hour late, the other a day and a half.
    await conn.execute("UPDATE editions SET send_at = now() - interval '1 hour' WHERE id = $1", late)
    await conn.execute("UPDATE editions SET send_at = now() - interval '36 hours' WHERE id = $1", stale)
    await conn.close()
    async with running_worker(app):
        sent = await _wait_status(client, admin_headers, late, "done")
        cancelled = await _wait_status(client, admin_headers, stale, "cancelled")
    assert sent["sent"] == 2
    assert cancelled["sent"] == 0 and cancelled["skipped"] == 2
    assert "24" in (cancelled["status_reason"] or "")


async def test_copies_are_dkim_signed_over_the_unsubscribe_headers(
    client: Client, admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    key_file, dns = dkim_key(tmp_path)
    signing = replace_settings(settings, dkim_selector="lb1", dkim_key_file=str(key_file))
    signing_app = create_app(signing)
    await seed_readers(settings.database_url or "", 2)
    async with AsyncTestClient(signing_app) as signing_client:
        await _post(signing_client, admin_headers, "dkim")
        async with running_worker(signing_app, signing):
            received = await smtp_sink.wait_for(2)

    for item in received:
        assert dkim.verify(item.content, dnsfunc=dns), "the signature verifies"
        signature = item.parsed()["DKIM-Signature"]
        signed = re.search(r"h=([^;]+)", str(signature).replace("\r\n", "").replace(" ", ""))
        assert signed is not None
        headers = signed[1].lower().split(":")
        assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= set(headers)


async def test_confirmation_mails_are_dkim_signed_too(
    admin_headers: dict[str, str], settings: Settings, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    key_file, dns = dkim_key(tmp_path)
    signing = replace_settings(settings, dkim_selector="lb1", dkim_key_file=str(key_file))
    signing_app = create_app(signing)
    await seed_readers(settings.database_url or "", 1)
    async with AsyncTestClient(signing_app) as signing_client:
        answer = await signing_client.post(
            "/v1/subscriptions", json={"email": "new@example.net", "lists": ["news"]}, headers=admin_headers
        )
        assert answer.status_code == 202, answer.text
        async with running_worker(signing_app, signing):
            (received,) = await smtp_sink.wait_for(1)

    assert received.parsed()["Subject"] == "Please confirm your subscription"
    assert dkim.verify(received.content, dnsfunc=dns), "the confirmation mail's signature verifies"
