"""Export (everything held) and erasure (nothing left but a hashed suppression)."""

from __future__ import annotations

import pytest
from litestar import Litestar

from service.db.pool import Database
from tests.subscribers.conftest import Client, link_in, rows, subscribe, value
from tests.support.smtp import SmtpSink
from tests.support.worker import running_worker

pytestmark = pytest.mark.usefixtures("demo")
Headers = dict[str, str]
ADDRESS = "Erin.Walsh@example.org"
NAME = "Erin Walsh-Quigley"


async def _a_reader_with_history(client: Client, app: Litestar, db: Database, smtp_sink: SmtpSink) -> int:
    """Erin subscribes, confirms, gets an edition, bounces once, and leaves one list."""
    await subscribe(client, ADDRESS, lists=("newsletter", "training"), name=NAME, agency="police",
                    headers={"User-Agent": "ErinBrowser/1.0"})
    async with running_worker(app):
        (received,) = await smtp_sink.wait_for(1)
    await client.post(link_in(received, "confirm"))
    reader: int = await value(db, "SELECT id FROM subscribers")
    edition = await db.pool.fetchval(
        "INSERT INTO editions (idempotency_key, request_hash, subject, html, from_addr, list_ids, status) "
        "VALUES ('k1', '\\x00', 'November', '<p>hi</p>', 'news@example.org', '{1}', 'done') RETURNING id")
    delivery = await db.pool.fetchval(
        "INSERT INTO deliveries (edition_id, subscriber_id, list_id, status, sent_at, last_reply, message_id) "
        "VALUES ($1, $2, 1, 'sent', now(), $3, '<1.abc@example.org>') RETURNING id",
        edition, reader, f"250 2.0.0 OK queued for <{ADDRESS.lower()}>")
    await db.pool.execute(
        "INSERT INTO bounce_events (subscriber_id, delivery_id, edition_id, email_hash, kind, diagnostic, source) "
        "VALUES ($1, $2, $3, email_hash($4), 'soft', $5, 'smtp')",
        reader, delivery, edition, ADDRESS, f"452 mailbox of {ADDRESS} full")
    await db.pool.execute(
        "INSERT INTO bounce_events (email_hash, kind, diagnostic, source) VALUES (email_hash($1), 'soft', $2, 'dsn')",
        ADDRESS, f"unmatched report about {ADDRESS}")
    await db.pool.execute("INSERT INTO edition_unsubscribes (edition_id, subscriber_id) VALUES ($1, $2)",
                          edition, reader)
    return reader


async def test_export_returns_everything_held(
    client: Client, app: Litestar, db: Database, admin_headers: Headers, smtp_sink: SmtpSink
) -> None:
    reader = await _a_reader_with_history(client, app, db, smtp_sink)
    response = await client.get(f"/v1/subscribers/{reader}/export", headers=admin_headers)
    assert response.status_code == 200
    data = response.json()
    assert data["subscriber"]["email"] == ADDRESS and data["subscriber"]["name"] == NAME
    assert [(s["slug"], s["status"]) for s in data["subscriptions"]] == [
        ("newsletter", "confirmed"), ("training", "confirmed")]
    assert [c["action"] for c in data["consents"]] == ["subscribe", "confirm"]
    assert data["consents"][0]["user_agent"] == "ErinBrowser/1.0"
    assert data["consents"][0]["wording_version"] == "subscribe-form-1"
    assert [b["diagnostic"] for b in data["bounce_events"]] == [f"452 mailbox of {ADDRESS} full"]
    assert data["deliveries"]["total"] == 1 and data["deliveries"]["by_status"] == {"sent": 1}
    assert data["deliveries"]["last_sent_at"] is not None
    assert [(m["kind"], m["status"]) for m in data["system_mails"]] == [("confirm", "sent")]
    assert data["suppression"] is None
    assert (await client.get("/v1/subscribers/999999/export", headers=admin_headers)).status_code == 404


async def _tables(db: Database) -> list[str]:
    return [r["table_name"] for r in await rows(
        db, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE'")]


async def _traces(db: Database, needles: list[str]) -> list[str]:
    """Tables where any needle appears in any column (text, or hex inside bytea)."""
    found = []
    for table in await _tables(db):
        # The table names come from information_schema, not from input.
        query = f'SELECT row_to_json(x)::text AS t FROM "{table}" x'  # noqa: S608
        text = " ".join(r["t"] for r in await rows(db, query)).lower()
        for needle in needles:
            forms = {needle.lower(), needle.encode().hex(), needle.lower().encode().hex()}
            if any(form in text for form in forms):
                found.append(f"{table}: {needle}")
    return found


async def test_erasure_leaves_nothing_personal_and_keeps_them_out(
    client: Client, app: Litestar, db: Database, admin_headers: Headers, smtp_sink: SmtpSink
) -> None:
    reader = await _a_reader_with_history(client, app, db, smtp_sink)
    needles = [ADDRESS, NAME, "ErinBrowser"]
    assert "system_mails: Erin.Walsh@example.org" in await _traces(db, needles), "the search sees inside bytea"

    response = await client.delete(f"/v1/subscribers/{reader}", headers=admin_headers)
    assert response.status_code == 204
    assert await _traces(db, needles) == []
    assert (await client.get(f"/v1/subscribers/{reader}", headers=admin_headers)).status_code == 404
    assert (await client.delete(f"/v1/subscribers/{reader}", headers=admin_headers)).status_code == 404
    (suppression,) = await rows(db, "SELECT *, email_hash = email_hash($1) AS matches FROM suppressions", ADDRESS)
    assert (suppression["email"], suppression["reason"], suppression["matches"]) == (None, "erasure", True)
    delivery = (await rows(db, "SELECT * FROM deliveries"))[0]
    assert (delivery["subscriber_id"], delivery["last_reply"], delivery["message_id"]) == (None, None, None)
    assert await value(db, "SELECT count(*) FROM deliveries") == 1, "the edition's counts stay right"
    for table in ("consents", "subscriptions", "bounce_events", "system_mails", "edition_unsubscribes"):
        assert await value(db, f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608 - fixed names

    # They cannot be brought back: not by the form, not by the API, not by an import.
    smtp_sink.received.clear()
    again = await subscribe(client, ADDRESS.upper().replace("EXAMPLE.ORG", "example.org"))
    assert again.status_code == 200 and "Check your inbox" in again.text
    api = await client.post("/v1/subscriptions", json={"email": ADDRESS, "lists": ["newsletter"]},
                            headers=admin_headers)
    assert api.status_code == 202
    imported = await client.post("/v1/subscribers/import", content=f"email,lists\n{ADDRESS},newsletter\n".encode(),
                                 headers={**admin_headers, "content-type": "text/csv"})
    assert imported.json()["skipped"] == 1 and imported.json()["created"] == 0
    assert await value(db, "SELECT count(*) FROM subscribers") == 0
    assert await value(db, "SELECT count(*) FROM system_mails") == 0
    async with running_worker(app):
        pass
    assert smtp_sink.received == []


async def test_erasure_scrubs_a_suppression_that_named_the_address(
    client: Client, db: Database, admin_headers: Headers
) -> None:
    reader = await db.pool.fetchval("INSERT INTO subscribers (email, status) VALUES ($1, 'bounced') RETURNING id",
                                    ADDRESS)
    await db.pool.execute("INSERT INTO suppressions (email_hash, email, reason, detail) "
                          "VALUES (email_hash($1), lower($1), 'hard_bounce', $2)", ADDRESS, f"550 {ADDRESS} unknown")
    assert (await client.delete(f"/v1/subscribers/{reader}", headers=admin_headers)).status_code == 204
    assert await _traces(db, [ADDRESS]) == []
    assert await value(db, "SELECT reason FROM suppressions") == "erasure"
