"""Posting an edition: validate, honour the Idempotency-Key, freeze the recipients.

Everything happens in the request's transaction, so a refused or failed post
writes nothing, and a post that answers 202 has all its deliveries queued.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import asyncpg
import msgspec

from ..audience import with_filter
from ..db.pool import Database
from ..errors import BadRequest, Conflict, Unprocessable
from ..segments.compile import compile_filter
from ..segments.statement_timeout import statement_timeout
from ..segments.targets import resolve_target
from ..settings import Settings
from .composition import compose_posted, one_line
from .schemas import EditionAccepted, EditionIn

MAX_IDEMPOTENCY_KEY = 200


def request_hash(body: EditionIn) -> bytes:
    """A stable digest of the posted body: the same key with another body is a conflict."""
    return hashlib.sha256(msgspec.json.encode(body)).digest()


async def post_edition(
    conn: asyncpg.Connection, db: Database, settings: Settings, key: str | None, body: EditionIn
) -> EditionAccepted:
    """Create the edition and its deliveries, or answer the edition this key already made."""
    if not key or not key.strip():
        raise BadRequest("An 'Idempotency-Key' header is required, so that a retried post cannot send twice.")
    if len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise BadRequest(f"The 'Idempotency-Key' must be printable and at most {MAX_IDEMPOTENCY_KEY} characters.")
    digest = request_hash(body)
    existing = await conn.fetchrow(db.q["edition-by-key"], key)
    if existing is not None:
        return _replay(existing, digest)

    target = await resolve_target(conn, db.q, segment=body.segment, lists=body.lists, filter_=body.filter)
    from_addr = one_line("from", body.from_ or settings.from_addr)
    compose_posted(body, from_addr, settings)  # what the worker would refuse is refused now

    if body.send_at is not None and body.send_at.tzinfo is None:
        raise Unprocessable("'send_at' needs a time zone (e.g. 2026-12-01T09:00:00Z).")
    if body.expires_at is not None:
        if body.expires_at.tzinfo is None:
            raise Unprocessable("'expires_at' needs a time zone (e.g. 2026-12-08T09:00:00Z).")
        if body.expires_at <= (body.send_at or datetime.now(UTC)):
            raise Unprocessable("'expires_at' must be later than 'send_at' (or now, when the edition goes at once).")
    insert, arguments = db.q.bind(
        "edition-insert",
        idempotency_key=key,
        request_hash=digest,
        subject=body.subject,
        html=body.html,
        text_body=body.text,
        from_addr=from_addr,
        reply_to=body.reply_to,
        list_ids=target.list_ids,
        filter=body.filter,
        segment=body.segment,
        send_at=body.send_at,
        expires_at=body.expires_at,
        priority=body.priority,
    )
    created = await conn.fetchrow(insert, *arguments)
    if created is None:  # another request with this key committed first
        raced = await conn.fetchrow(db.q["edition-by-key"], key)
        assert raced is not None
        return _replay(raced, digest)
    edition_id, status = created["id"], created["status"]

    fragment, params = compile_filter(target.filter, first_param=3)
    async with statement_timeout(
        conn, db, settings.fan_out_timeout_seconds, variable="LETTERBOX_FAN_OUT_TIMEOUT_SECONDS",
        what="Freezing this edition's recipients",
    ):  # fmt: skip
        result = await conn.execute(
            with_filter(db.q["audience-fan-out"], fragment), target.list_ids, edition_id, *params
        )
    recipients = int(result.rsplit(" ", 1)[1])
    await conn.execute(db.q["edition-set-recipients"], edition_id, recipients)
    return EditionAccepted(id=edition_id, status=status, recipients=recipients)


def _replay(existing: asyncpg.Record, digest: bytes) -> EditionAccepted:
    if bytes(existing["request_hash"]) != digest:
        raise Conflict("This Idempotency-Key was already used for a different edition.")
    return EditionAccepted(id=existing["id"], status=existing["status"], recipients=existing["recipients"])
