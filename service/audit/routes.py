"""``GET /v1/audit``: the audit log for admins, newest first, keyset paged; and ``/v1``'s ``audit`` dependency."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from ..auth import Principal
from ..db.pool import Database
from ..pagination import Cursor, decode_cursor, encode_cursor
from . import CURSOR_KIND, AuditPage, AuditTrail, page


def provide_api_audit(
    request: Request[Any, Any, Any], conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database]
) -> AuditTrail:
    """``/v1``'s ``audit`` dependency: entries name the API key the request authenticated with."""
    principal = getattr(request.state, "principal", None)
    actor = principal.name if isinstance(principal, Principal) else "unknown"
    return AuditTrail(conn, db.q, actor)


@get("/audit", opt={"scope": "admin"}, summary="Read the audit log (keyset pagination)")
async def list_audit(
    conn: NamedDependency[asyncpg.Connection],
    db: NamedDependency[Database],
    cursor: Cursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
) -> AuditPage:
    """Who (a user's email or an API key's name) changed what, on which object, when; newest first."""
    entries, more = await page(conn, db.q, decode_cursor(CURSOR_KIND, cursor), limit)
    return AuditPage(items=entries, next_cursor=encode_cursor(CURSOR_KIND, entries[-1].id) if more else None)


api_handlers = [list_audit]
