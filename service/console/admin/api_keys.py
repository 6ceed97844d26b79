"""``/console/api-keys``: create keys with scopes (the token is shown once) and revoke them (admin)."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from ...audit import AuditTrail
from ...auth import SCOPES, generate_key, validate_scopes
from ...db.pool import Database
from ...errors import NotFound, Unprocessable
from ...subscribers.web import form_text
from ..access import requires_admin
from ..web import render, see_other


async def _page(conn: asyncpg.Connection, db: Database, *, created: dict[str, Any] | None = None,
                status: int = 200) -> Template:
    keys = await conn.fetch(db.q["api-key-list"])
    return render("console/api_keys.html", {"title": "API keys", "keys": keys, "scopes": SCOPES,
                                            "created": created}, status=status)


@get("/api-keys", guards=[requires_admin], include_in_schema=False)
async def api_keys_page(conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database]) -> Template:
    """Every key (never its secret), and the form to make one."""
    return await _page(conn, db)


@post("/api-keys", guards=[requires_admin], include_in_schema=False, status_code=201)
async def create_api_key(request: Request[Any, Any, Any], conn: NamedDependency[asyncpg.Connection],
                         db: NamedDependency[Database], audit: NamedDependency[AuditTrail]) -> Template:
    """Make a key and show its token this once (the page is not cached and sends no Referer)."""
    form = await request.form()
    name = form_text(form.get("name"), 200).strip()
    if not 1 <= len(name) <= 100:
        raise Unprocessable("Give the key a name of 1 to 100 characters: who or what it is for.")
    try:
        scopes = validate_scopes(s for s in form.getall("scope", []) if isinstance(s, str))
    except ValueError as exc:
        raise Unprocessable("Choose at least one scope from the list.") from exc
    key = generate_key()
    row = await conn.fetchrow(db.q["api-key-insert"], name, key.prefix, key.secret_hash, scopes)
    assert row is not None
    await audit.record("api_key.create", "api_key", row["id"], {"name": name, "prefix": key.prefix,
                                                                  "scopes": scopes})
    return await _page(conn, db, created={"name": name, "token": key.token, "scopes": scopes}, status=201)


@post("/api-keys/{key_id:int}/revoke", guards=[requires_admin], include_in_schema=False, status_code=303)
async def revoke_api_key(key_id: int, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database],
                         audit: NamedDependency[AuditTrail]) -> Redirect:
    """Revoke a key: the next request made with it is refused."""
    revoked = await conn.fetchrow(db.q["api-key-revoke"], str(key_id))
    if revoked is None:
        raise NotFound(f"There is no API key {key_id}.")
    await audit.record("api_key.revoke", "api_key", revoked["id"], {"name": revoked["name"],
                                                                      "prefix": revoked["prefix"]})
    return see_other("/console/api-keys")


handlers = [api_keys_page, create_api_key, revoke_api_key]
