"""Test data for bounce handling: copies "already sent", corpus mails rewritten to our readers, API keys."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import asyncpg

from service.auth import generate_key

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bounce-corpus" / "eml"


def corpus_mail(name: str, replacements: dict[str, str] | None = None) -> bytes:
    """A real bounce from the corpus, with addresses in it swapped for ours."""
    raw = (CORPUS / name).read_bytes()
    for old, new in (replacements or {}).items():
        raw = raw.replace(old.encode(), new.encode())
    return raw


async def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one query on a short-lived connection."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def value(database_url: str, sql: str, *args: Any) -> Any:
    """The first column of the first row of one query."""
    rows = await fetch(database_url, sql, *args)
    return rows[0][0] if rows else None


async def sent_edition(database_url: str, emails: list[str], *, sent_days_ago: float = 0) -> tuple[int, list[int]]:
    """An edition to ``emails`` whose copies were all sent ``sent_days_ago``; returns its id and the delivery ids.

    Message-IDs follow the worker's ``<DELIVERY_ID.RANDOM@domain>``.
    """
    conn = await asyncpg.connect(database_url)
    try:
        edition_id = await conn.fetchval(
            """
            INSERT INTO editions (idempotency_key, request_hash, subject, html, from_addr, list_ids, status)
            SELECT $1, '\\x00', 'Bounce test', '<p>Hi</p>', 'news@example.org', array_agg(id), 'done'
            FROM lists WHERE slug = 'news'
            RETURNING id
            """,
            secrets.token_hex(8),
        )
        ids: list[int] = []
        for email in emails:
            delivery_id = await conn.fetchval(
                """
                INSERT INTO deliveries (edition_id, subscriber_id, list_id, status, attempts, sent_at)
                SELECT $1, s.id, (SELECT id FROM lists WHERE slug = 'news'), 'sent', 1,
                       now() - make_interval(secs => $3)
                FROM subscribers s WHERE lower(s.email) = lower($2)
                RETURNING id
                """,
                edition_id,
                email,
                sent_days_ago * 86400,
            )
            await conn.execute(
                "UPDATE deliveries SET message_id = '<' || id || '.' || $2 || '@news.example.org>' WHERE id = $1",
                delivery_id,
                secrets.token_hex(6),
            )
            ids.append(int(delivery_id))
        return int(edition_id), ids
    finally:
        await conn.close()


async def key_headers(database_url: str, *scopes: str) -> dict[str, str]:
    """Authorization for a new API key with exactly ``scopes``."""
    key = generate_key()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO api_keys (name, prefix, secret_hash, scopes) VALUES ('test', $1, $2, $3)",
            key.prefix,
            key.secret_hash,
            list(scopes),
        )
    finally:
        await conn.close()
    return {"Authorization": f"Bearer {key.token}"}


async def reader_state(database_url: str, email: str) -> dict[str, Any]:
    """A reader's status, soft-bounce count, suppression and subscription statuses."""
    rows = await fetch(
        database_url,
        """
        SELECT s.status, s.soft_bounces,
               (SELECT reason FROM suppressions p WHERE p.email_hash = email_hash($1)) AS suppressed,
               (SELECT array_agg(status ORDER BY list_id) FROM subscriptions WHERE subscriber_id = s.id) AS lists
        FROM subscribers s WHERE lower(s.email) = lower($1)
        """,
        email,
    )
    return dict(rows[0])


def dsn_mail(return_path: str, email: str, *, action: str, status: str, diagnostic: str, subject: str = "") -> bytes:
    """An RFC 3464 report, as Postfix writes one, about ``email``, sent to our ``return_path``."""
    subject = subject or ("Delayed Mail (still being retried)" if action == "delayed" else "Undelivered Mail")
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: {return_path}
Subject: {subject}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host mx.example.net.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {email}
Original-Recipient: rfc822;{email}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--B--
""".replace("\n", "\r\n").encode()
