"""``/console/users``: list, create, change role, disable and enable operator accounts (admin).

An admin cannot disable or demote themselves, so the console always keeps the
admin who is using it.  Changing a role or disabling signs that user out.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from ...accounts import users
from ...audit import AuditTrail
from ...db.pool import Database
from ...errors import Unprocessable
from ...subscribers.web import form_text
from ..access import requires_admin
from ..operator import Operator
from ..web import render, see_other

PATH = "/console/users"


@get("/users", guards=[requires_admin], include_in_schema=False)
async def users_page(conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database]) -> Template:
    """Every account with its role and state, and the form to add one."""
    return render("console/users.html", {"title": "Users", "users": await users.list_users(conn, db.q),
                                         "roles": users.ROLES})


@post("/users", guards=[requires_admin], include_in_schema=False, status_code=303)
async def create_user(request: Request[Any, Any, Any], conn: NamedDependency[asyncpg.Connection],
                      db: NamedDependency[Database], audit: NamedDependency[AuditTrail]) -> Redirect:
    """Add an account; without a password it signs in only through OpenID Connect."""
    form = await request.form()
    password = form_text(form.get("password"), 2000) or None
    user = await users.create_user(conn, db.q, form_text(form.get("email"), 400), form_text(form.get("role")),
                                   password)
    await audit.record("user.create", "user", user.id, {"email": user.email, "role": user.role})
    return see_other(PATH)


@post("/users/{user_id:int}/role", guards=[requires_admin], include_in_schema=False, status_code=303)
async def change_role(request: Request[Any, Any, Any], user_id: int, conn: NamedDependency[asyncpg.Connection],
                      db: NamedDependency[Database], audit: NamedDependency[AuditTrail],
                      operator: NamedDependency[Operator]) -> Redirect:
    """Give an account another role (it is signed out)."""
    role = users.check_role(form_text((await request.form()).get("role")))
    if user_id == operator.user_id and role != operator.role:
        raise Unprocessable("You cannot change your own role; ask another admin.")
    old, user = await users.set_role(conn, db.q, user_id, role)
    if old != user.role:
        await audit.record("user.role", "user", user.id, {"email": user.email, "from": old, "to": user.role})
    return see_other(PATH)


@post("/users/{user_id:int}/disable", guards=[requires_admin], include_in_schema=False, status_code=303)
async def disable_user(user_id: int, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database],
                       audit: NamedDependency[AuditTrail], operator: NamedDependency[Operator]) -> Redirect:
    """Disable an account and sign it out everywhere."""
    if user_id == operator.user_id:
        raise Unprocessable("You cannot disable your own account; ask another admin.")
    user = await users.disable_user(conn, db.q, (await users.get_user(conn, db.q, user_id)).email)
    await audit.record("user.disable", "user", user.id, {"email": user.email})
    return see_other(PATH)


@post("/users/{user_id:int}/enable", guards=[requires_admin], include_in_schema=False, status_code=303)
async def enable_user(user_id: int, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database],
                      audit: NamedDependency[AuditTrail]) -> Redirect:
    """Let a disabled account sign in again."""
    user = await users.enable_user(conn, db.q, user_id)
    await audit.record("user.enable", "user", user.id, {"email": user.email})
    return see_other(PATH)


handlers = [users_page, create_user, change_role, disable_user, enable_user]
