"""``/v1/suppressions``: the addresses never to be mailed again, and lifting one.

A suppression is added by a hard bounce, a complaint, too many soft bounces
or an erasure (see ``policy.py`` and the subscriber lifecycle).  Lifting one
lets the address be mailed again; the reader's own status does not change
here: a ``bounced`` reader is made active again with ``PATCH
/v1/subscribers/{id}``, and someone who complained must subscribe again.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
import structlog
from litestar import Controller, delete, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from ..audit import AuditTrail
from ..db.pool import Database
from ..db.queries import Queries
from ..errors import NotFound, Unprocessable
from ..logs import mask_email
from ..pagination import Cursor, decode_time_cursor, encode_time_cursor
from ..schemas import EmailPath
from .schemas import Suppression, SuppressionPage

log = structlog.get_logger(__name__)

READ = {"scope": "subscribers:read"}
WRITE = {"scope": "subscribers:write"}  # admin keys have every scope


class SuppressionController(Controller):
    """List suppressions and lift one."""

    path = "/suppressions"
    tags = ["suppressions"]  # noqa: RUF012 - Litestar's own attribute type

    @get("/", opt=READ, summary="List suppressed addresses")
    async def list_suppressions(
        self,
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> SuppressionPage:
        """Newest first; keyset pagination with ``cursor``. ``email`` is null for erased people."""
        return await suppression_page(conn, db.q, cursor, limit)

    @delete("/{email:str}", opt=WRITE, summary="Lift an address's suppression")
    async def lift(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], email: EmailPath,
        audit: NamedDependency[AuditTrail],
    ) -> None:
        """Let the address be mailed again (an erased person's too, by giving their address); 404 if not suppressed."""
        reason = await lift_suppression(conn, db.q, email)
        await audit.record("suppression.lift", "suppression", email.strip(), {"reason": reason},
                           about_email=email.strip())


async def suppression_page(conn: asyncpg.Connection, q: Queries, cursor: str | None, limit: int) -> SuppressionPage:
    """Suppressions newest first after ``cursor`` (a ``next_cursor`` given out before; else a 422)."""
    after, after_hash = decode_time_cursor(cursor)
    rows = await conn.fetch(q["suppression-page"], after, after_hash, limit + 1)
    items = [
        Suppression(email=r["email"], reason=r["reason"], detail=r["detail"], created_at=r["created_at"])
        for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_time_cursor(last["created_at"], bytes(last["email_hash"]))
    return SuppressionPage(items=items, next_cursor=next_cursor)


async def lift_suppression(conn: asyncpg.Connection, q: Queries, email: str) -> str:
    """Lift an address's suppression and return its reason; :class:`Unprocessable` or :class:`NotFound`."""
    address = email.strip()
    if "@" not in address or len(address) > 320 or any(c.isspace() for c in address):
        raise Unprocessable("Give the suppressed e-mail address, like name@example.org.")
    reason: str | None = await conn.fetchval(q["suppression-remove"], address)
    if reason is None:
        raise NotFound("This address is not suppressed.")
    log.info("suppression_lifted", email=mask_email(address), reason=reason)
    return reason

