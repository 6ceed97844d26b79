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
from ..delivery.addresses import UnsendableAddress, sender_domain
from ..delivery.compose import EditionMail, HeaderInjectionError, prepare
from ..delivery.dkim import signable_domain
from ..errors import BadRequest, Conflict, Unprocessable
from ..segments.compile import compile_filter
from ..segments.filter import parse_filter
from ..segments.routes import list_ids as resolve_list_ids
from ..segments.routes import resolve_segment
from ..segments.statement_timeout import statement_timeout
from ..settings import Settings
from .schemas import EditionAccepted, EditionIn

MAX_IDEMPOTENCY_KEY = 200


def request_hash(body: EditionIn) -> bytes:
    """A stable digest of the posted body: the same key with another body is a conflict."""
    return hashlib.sha256(msgspec.json.encode(body)).digest()


def _check_address(field: str, value: str) -> str:
    """Refuse CR/LF here (header injection); the composer checks the mailbox's shape in _check_mail."""
    if any(c in value for c in "\r\n\x00"):
        raise Unprocessable(f"'{field}' must be one line: it contains a line break.")
    return value.strip()


def _check_mail(body: EditionIn, from_addr: str, settings: Settings) -> None:
    """Compose the edition once: anything the composer refuses is the poster's error, found now."""
    if "\r" in body.subject or "\n" in body.subject:
        raise Unprocessable("'subject' must be one line: it contains a line break.")
    try:
        domain = sender_domain(from_addr, settings.effective_bounce_domain)
    except UnsendableAddress as exc:
        raise Unprocessable(f"'from' cannot be used for mail: {exc}.") from None
    if settings.dkim_selector and not signable_domain(domain):
        raise Unprocessable(f"Mail is DKIM-signed for the From domain, and '{domain}' is not a DNS domain name.")
    try:
        # The same composition the worker does, so nothing it would refuse reaches a 202.
        prepare(
            EditionMail(
                subject=body.subject,
                html=body.html,
                text=body.text,
                from_addr=from_addr,
                reply_to=body.reply_to,
                list_id=f"check.{settings.effective_bounce_domain}",
                list_name="",
            ),
            message_id_domain=domain,
            one_click=settings.one_click,
        )
    except HeaderInjectionError as exc:
        raise Unprocessable(f"The edition cannot be sent as posted: {exc}.") from None


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

    if body.segment is not None:
        if body.lists or body.filter is not None:
            raise Unprocessable("Give either 'segment' or 'lists' (with an optional 'filter'), not both.")
        slugs, node = await resolve_segment(conn, db, body.segment)
    else:
        if not body.lists:
            raise Unprocessable("'lists' must name at least one list (or give a 'segment').")
        slugs, node = body.lists, parse_filter(body.filter)
    from_addr = _check_address("from", body.from_ or settings.from_addr)
    if body.reply_to is not None:
        _check_address("reply_to", body.reply_to)
    _check_mail(body, from_addr, settings)
    list_ids = await resolve_list_ids(conn, db, slugs)

    if body.send_at is not None and body.send_at.tzinfo is None:
        raise Unprocessable("'send_at' needs a time zone (e.g. 2026-12-01T09:00:00Z).")
    if body.expires_at is not None:
        if body.expires_at.tzinfo is None:
            raise Unprocessable("'expires_at' needs a time zone (e.g. 2026-12-08T09:00:00Z).")
        if body.expires_at <= (body.send_at or datetime.now(UTC)):
            raise Unprocessable("'expires_at' must be later than 'send_at' (or now, when the edition goes at once).")
    created = await conn.fetchrow(
        db.q["edition-insert"],
        key,
        digest,
        body.subject,
        body.html,
        body.text,
        from_addr,
        body.reply_to,
        list_ids,
        body.filter,
        body.segment,
        body.send_at,
        body.expires_at,
        body.priority,
    )
    if created is None:  # another request with this key committed first
        raced = await conn.fetchrow(db.q["edition-by-key"], key)
        assert raced is not None
        return _replay(raced, digest)
    edition_id, status = created["id"], created["status"]

    fragment, params = compile_filter(node, first_param=3)
    async with statement_timeout(
        conn, db, settings.fan_out_timeout_seconds, variable="LETTERBOX_FAN_OUT_TIMEOUT_SECONDS",
        what="Freezing this edition's recipients",
    ):  # fmt: skip
        result = await conn.execute(with_filter(db.q["audience-fan-out"], fragment), list_ids, edition_id, *params)
    recipients = int(result.rsplit(" ", 1)[1])
    await conn.execute(db.q["edition-set-recipients"], edition_id, recipients)
    return EditionAccepted(id=edition_id, status=status, recipients=recipients)


def _replay(existing: asyncpg.Record, digest: bytes) -> EditionAccepted:
    if bytes(existing["request_hash"]) != digest:
        raise Conflict("This Idempotency-Key was already used for a different edition.")
    return EditionAccepted(id=existing["id"], status=existing["status"], recipients=existing["recipients"])
