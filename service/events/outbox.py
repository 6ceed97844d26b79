"""Record an event in the transaction of the change that causes it: the durable outbox.

Each call writes one row per endpoint listening for the type (``INSERT … SELECT``).
If the change rolls back, its event goes with it; once it commits, the worker
sends the event (service/events/sender.py), never the request that caused it.
Every function here must be called on the connection of the change's transaction.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from ..db.queries import Queries
from .types import EventType

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # The change's connection: a request's, or one a worker took from the pool itself.
    Conn = asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]


def new_webhook_id() -> str:
    """A Standard Webhooks message id: one per event, kept across retries so receivers can drop repeats."""
    return "msg_" + secrets.token_hex(16)


def _json(data: dict[str, Any]) -> str:
    return msgspec.json.encode(data).decode()


async def emit(conn: Conn, q: Queries, type: EventType, data: dict[str, Any]) -> None:
    """Record event ``type`` carrying ``data`` for every endpoint that listens for it."""
    await conn.execute(q["event-emit"], type, new_webhook_id(), _json(data))


async def emit_subscriber(conn: Conn, q: Queries, type: EventType, subscriber_id: int,
                          **fields: Any) -> None:
    """Record an event about a reader: ``{"subscriber": {id, email, name, agency, role, status}, **fields}``.

    The reader is read as they are at this point of the transaction (their new status included).
    """
    await conn.execute(q["event-emit-subscriber"], type, new_webhook_id(), subscriber_id, _json(fields))


async def emit_edition(conn: Conn, q: Queries, type: EventType, edition_id: int) -> None:
    """Record ``edition.done`` or ``edition.paused`` with the edition's status, reason and counts."""
    if not await conn.fetchval(q["event-wanted"], type):
        return  # the counts read every delivery of the edition: not for nobody
    row = await conn.fetchrow(q["edition-get"], edition_id)
    if row is None:
        return
    edition = {
        "id": row["id"],
        "subject": row["subject"],
        "status": row["status"],
        "reason": row["status_reason"],
        "lists": list(row["lists"]),
        **{name: row[name] for name in _COUNTS},
    }
    await emit(conn, q, type, {"edition": edition})


_COUNTS = ("recipients", "queued", "sent", "failed", "skipped", "bounced", "complained", "unsubscribed")


async def emit_erased(conn: Conn, q: Queries, subscriber_id: int) -> None:
    """Erasure: scrub the person's address and name from earlier messages, then record
    ``subscriber.erased`` carrying nothing but their id."""
    await conn.execute(q["event-forget-subscriber"], subscriber_id)
    await emit(conn, q, "subscriber.erased", {"subscriber": {"id": subscriber_id}})
