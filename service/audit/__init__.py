"""The audit log: who changed what, through the console or ``/v1``, in an append-only table.

:func:`record` is called by every mutating handler with the same connection
(and so the same transaction) as the change: a change that rolls back leaves
no entry, and an entry never describes a change that did not happen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from ..db.queries import Queries

CURSOR_KIND = "a"
"""The audit log's letter in keyset cursors (service/pagination.py)."""


class AuditEntry(msgspec.Struct, frozen=True):
    """One change: who (a user's email or an API key's name), what, on which object, when."""

    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    detail: dict[str, Any] | None


class AuditPage(msgspec.Struct, frozen=True):
    """A page of the audit log, newest first; follow ``next_cursor`` until it is null."""

    items: list[AuditEntry]
    next_cursor: str | None


async def record(
    conn: asyncpg.Connection,
    q: Queries,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int | None,
    detail: dict[str, Any] | None = None,
    *,
    about_email: str | None = None,
) -> None:
    """Append an entry in the caller's transaction.

    ``about_email`` is the reader's address the entry concerns (a suppression, say), so that
    erasing that reader finds and scrubs it; entries about a subscriber are found by their id.
    """
    await conn.execute(
        q["audit-insert"], actor, action, object_type, None if object_id is None else str(object_id), detail,
        about_email,
    )


class AuditTrail:
    """:func:`record` bound to one request's connection and actor: the ``audit`` dependency.

    ``/v1`` handlers get one naming the API key, console handlers one naming the signed-in user.
    """

    def __init__(self, conn: asyncpg.Connection, q: Queries, actor: str) -> None:
        self.conn = conn
        self.q = q
        self.actor = actor

    async def record(
        self,
        action: str,
        object_type: str,
        object_id: str | int | None,
        detail: dict[str, Any] | None = None,
        *,
        about_email: str | None = None,
    ) -> None:
        """Append an entry in the request's transaction (see :func:`record`)."""
        await record(self.conn, self.q, self.actor, action, object_type, object_id, detail, about_email=about_email)


def changes(patch: msgspec.Struct) -> dict[str, Any]:
    """The fields a PATCH body sets, for an entry's detail (fields left out or null are not changes)."""
    given: dict[str, Any] = msgspec.to_builtins(patch)
    return {name: value for name, value in given.items() if value is not None}


async def page(conn: asyncpg.Connection, q: Queries, before: int, limit: int) -> tuple[list[AuditEntry], bool]:
    """Entries older than the id ``before`` (0: the newest), and whether more follow."""
    rows = await conn.fetch(q["audit-page"], before, limit + 1)
    entries = [
        AuditEntry(r["id"], r["at"], r["actor"], r["action"], r["object_type"], r["object_id"], r["detail"])
        for r in rows[:limit]
    ]
    return entries, len(rows) > limit


async def scrub_subscriber(conn: asyncpg.Connection, q: Queries, subscriber_id: int, email: str) -> None:
    """Erasure: entries about this reader keep who did what and when, and lose the personal detail."""
    await conn.execute(q["audit-scrub-subscriber"], subscriber_id, email)
