"""``/console/audit``: the audit log, newest first, a page at a time (admin)."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from litestar import get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Template

from ... import audit
from ...db.pool import Database
from ...pagination import decode_cursor, encode_cursor
from ..access import requires_admin
from ..web import render

PAGE_SIZE = 50


@get("/audit", guards=[requires_admin], include_in_schema=False)
async def audit_page(
    conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database],
    cursor: Annotated[str | None, Parameter(query="cursor")] = None,
) -> Template:
    """Who changed what, when; a link to the next (older) page."""
    entries, more = await audit.page(conn, db.q, decode_cursor(audit.CURSOR_KIND, cursor), PAGE_SIZE)
    next_cursor = encode_cursor(audit.CURSOR_KIND, entries[-1].id) if more else None
    return render("console/audit.html", {"title": "Audit log", "entries": entries, "next_cursor": next_cursor,
                                         "first_page": cursor is None})


handlers = [audit_page]
