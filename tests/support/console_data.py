"""Data for the console's page tests: readers, editions through the real API, bounces and consents."""

from __future__ import annotations

from typing import Any

import asyncpg

from service.settings import Settings
from tests.support.seed import seed_readers


async def post_edition(client: Any, headers: dict[str, str], subject: str, *, key: str | None = None,
                       html: str = "<p>Hello {{name}}</p>", lists: tuple[str, ...] = ("news",)) -> int:
    """Queue an edition through ``POST /v1/editions``; returns its id."""
    response = await client.post(
        "/v1/editions", headers={**headers, "Idempotency-Key": key or subject},
        json={"subject": subject, "html": html, "lists": list(lists)},
    )
    assert response.status_code == 202, response.text
    edition_id: int = response.json()["id"]
    return edition_id


async def seed_console(database_url: str, client: Any, headers: dict[str, str], readers: int = 6) -> dict[str, Any]:
    """``readers`` readers on ``news``, one edition queued to them, a bounce, a complaint, an unmatched
    report and an unsubscribe; returns the ids and addresses."""
    emails = await seed_readers(database_url, readers)
    edition_id = await post_edition(client, headers, "Spring safeguarding update")
    conn = await asyncpg.connect(database_url)
    try:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM subscribers ORDER BY id")]
        # Half the copies sent, one failed: a sending edition part-way through.
        await conn.execute(
            """
            UPDATE deliveries SET status = CASE WHEN subscriber_id = $2 THEN 'failed' ELSE 'sent' END,
                                  sent_at = CASE WHEN subscriber_id = $2 THEN NULL ELSE now() END, attempts = 1,
                                  last_reply = CASE WHEN subscriber_id = $2 THEN '550 5.1.1 no such user' END
            WHERE edition_id = $1 AND subscriber_id = ANY ($3::bigint[])
            """,
            edition_id, ids[0], ids[: readers // 2],
        )
        await conn.execute("UPDATE editions SET status = 'sending', started_at = now() WHERE id = $1", edition_id)
        await conn.execute(
            "INSERT INTO bounce_events (subscriber_id, edition_id, email_hash, kind, status, diagnostic, source, counted) "
            "SELECT id, $1, email_hash, 'hard', '5.1.1', '550 5.1.1 no such user', 'smtp', true FROM subscribers "
            "WHERE id = $2",
            edition_id, ids[0],
        )
        await conn.execute(
            "INSERT INTO bounce_events (subscriber_id, edition_id, email_hash, kind, source) "
            "SELECT id, $1, email_hash, 'complaint', 'arf' FROM subscribers WHERE id = $2",
            edition_id, ids[1],
        )
        await conn.execute(
            "INSERT INTO bounce_events (email_hash, kind, status, diagnostic, source, counted) "
            "VALUES (email_hash('stranger@example.net'), 'hard', '5.1.1', '550 unknown stranger', 'raw', true)"
        )
        await conn.execute(
            "INSERT INTO consents (subscriber_id, action, lists, source) VALUES ($1, 'unsubscribe', '{news}', 'link')",
            ids[2],
        )
    finally:
        await conn.close()
    return {"edition_id": edition_id, "subscriber_ids": ids, "emails": emails}


async def sql(settings: Settings, query: str, *args: Any) -> Any:
    """One value from the test's database."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()
