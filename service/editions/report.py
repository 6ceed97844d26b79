"""An edition's delivery report by agency and by role: "did the police practitioners get it?"."""

from __future__ import annotations

import asyncpg
import msgspec

from ..db.pool import Database
from ..errors import NotFound


class _Counts(msgspec.Struct, kw_only=True):
    recipients: int
    sent: int
    failed: int
    skipped: int
    bounced: int
    complained: int
    unsubscribed: int


class AgencyCounts(_Counts, kw_only=True):
    """The copies of readers in one agency (``null``: no agency, or readers since erased)."""

    agency: str | None


class RoleCounts(_Counts, kw_only=True):
    """The copies of readers in one role (``null``: no role, or readers since erased)."""

    role: str | None


class EditionReport(msgspec.Struct, kw_only=True):
    """Per-agency and per-role counts of one edition's copies."""

    by_agency: list[AgencyCounts]
    by_role: list[RoleCounts]


_COUNTS = ("recipients", "sent", "failed", "skipped", "bounced", "complained", "unsubscribed")


async def edition_report(conn: asyncpg.Connection, db: Database, edition_id: int) -> EditionReport:
    """The report of one edition, from one query; :class:`NotFound` for an unknown edition."""
    if await conn.fetchval(db.q["edition-exists"], edition_id) is None:
        raise NotFound(f"There is no edition {edition_id}.")
    by_agency: list[AgencyCounts] = []
    by_role: list[RoleCounts] = []
    for row in await conn.fetch(db.q["edition-report"], edition_id):
        counts = {name: row[name] for name in _COUNTS}
        if row["is_role"]:
            by_role.append(RoleCounts(role=row["role"], **counts))
        else:
            by_agency.append(AgencyCounts(agency=row["agency"], **counts))
    return EditionReport(by_agency=by_agency, by_role=by_role)
