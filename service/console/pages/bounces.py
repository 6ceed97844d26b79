"""``/console/bounces``: the newest bounce and complaint reports, and those no reader was found for."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
import msgspec
from litestar import get
from litestar.params import FromQuery, QueryParameter
from litestar.response import Template

from ...db.queries import Queries
from ..access import requires_viewer
from ..web import render
from .common import PAGE_SIZE, Conn, Db


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """One report as received, with the reader and edition it was matched to (None: none found)."""

    id: int
    kind: str
    status: str | None
    diagnostic: str | None
    source: str
    counted: bool
    created_at: datetime
    subscriber_id: int | None
    email: str | None
    edition_id: int | None
    subject: str | None


class Reports(msgspec.Struct, frozen=True):
    """A page of reports, newest first, and the id to continue before (None: the last page)."""

    unmatched: bool
    items: list[Report]
    next_before: int | None


async def recent_reports(conn: asyncpg.Connection, q: Queries, unmatched: bool, before: int | None) -> Reports:
    """Reports newest first before the id ``before``; only those matched to no reader when ``unmatched``."""
    rows = await conn.fetch(q["console-bounces-recent"], before, unmatched, PAGE_SIZE + 1)
    items = [msgspec.convert(dict(r), Report) for r in rows[:PAGE_SIZE]]
    return Reports(unmatched, items, items[-1].id if len(rows) > PAGE_SIZE else None)


@get("/bounces", guards=[requires_viewer], include_in_schema=False)
async def bounces_page(
    conn: Conn,
    db: Db,
    unmatched: FromQuery[bool] = False,
    before: Annotated[int | None, QueryParameter(ge=1)] = None,
) -> Template:
    """Recent reports; ``unmatched=true``: those for which no reader was found."""
    view = await recent_reports(conn, db.q, unmatched, before)
    return render("console/bounces.html", {"title": "Bounces and complaints", "view": view})


handlers = [bounces_page]
