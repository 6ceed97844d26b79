"""Pausing, resuming and cancelling an edition: the same rules for ``/v1`` and the console."""

from __future__ import annotations

from typing import Literal

import asyncpg
import msgspec

from ..db.pool import Database
from ..errors import Conflict, NotFound
from ..events.outbox import emit_edition
from .schemas import Edition

Change = Literal["pause", "resume", "cancel"]
_DONE: dict[Change, str] = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


async def steer(conn: asyncpg.Connection, db: Database, edition_id: int, change: Change) -> Edition:
    """Apply ``change``; :class:`NotFound` for no such edition, :class:`Conflict` when its status forbids it.

    Pausing stops claims (copies in flight finish) and tells event endpoints; resuming carries on
    without sending anyone twice; cancelling skips every unsent copy for good.
    """
    sql = {"pause": db.q["edition-pause"], "resume": db.q["edition-resume"], "cancel": db.q["edition-cancel"]}[change]
    changed = await conn.fetchval(sql, edition_id)
    if changed is None:
        current = await conn.fetchval(db.q["edition-exists"], edition_id)
        if current is None:
            raise NotFound(f"There is no edition {edition_id}.")
        raise Conflict(f"Edition {edition_id} is {current} and cannot be {_DONE[change]}.")
    if change == "pause":
        await emit_edition(conn, db.q, "edition.paused", edition_id)
    row = await conn.fetchrow(db.q["edition-get"], edition_id)
    return msgspec.convert(dict(row or {}), Edition)
