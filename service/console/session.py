"""The console's session: a row in ``console_sessions`` named by a signed cookie.

The cookie holds only the session's id, signed (itsdangerous, the project's
keys), HttpOnly, SameSite=Lax, Secure when the public URL is https, scoped to
``/console``.  Whether it still works is the database's answer: the row must
exist, its user be enabled, and it must have been used within
``LETTERBOX_CONSOLE_IDLE_MINUTES``; so signing out, disabling a user or
changing their role ends the session in every process at once.
"""

from __future__ import annotations

import asyncpg
import msgspec
from litestar.datastructures import Cookie

from ..accounts.users import check_role
from ..db.queries import Queries
from ..settings import Settings
from ..tokens import Purpose, TokenInvalid, TokenSigner
from .operator import Operator

COOKIE = "letterbox_console"
PATH = "/console"


class Session(msgspec.Struct, frozen=True):
    """A live session and who it belongs to."""

    id: int
    operator: Operator


def session_id_from(signer: TokenSigner, cookie: str | None) -> int | None:
    """The session id a cookie names, or None when it is absent, forged or damaged."""
    if not cookie:
        return None
    try:
        fields = signer.verify(Purpose.CONSOLE_SESSION, cookie)
    except TokenInvalid:
        return None
    return fields[0] if len(fields) == 1 else None


async def load(conn: asyncpg.Connection, q: Queries, settings: Settings, session_id: int) -> Session | None:
    """The session if it is live (see the module docstring), marking it used; None otherwise."""
    row = await conn.fetchrow(q["console-session-operator"], session_id, settings.console_idle_minutes * 60.0)
    if row is None:
        return None
    return Session(session_id, Operator(user_id=row["user_id"], email=row["email"], role=check_role(row["role"])))


async def start(conn: asyncpg.Connection, q: Queries, settings: Settings, user_id: int) -> int:
    """Open a session for a user who has just proved who they are; returns its id."""
    await conn.execute(q["console-sessions-expire"], settings.console_idle_minutes * 60.0)
    await conn.execute(q["user-signed-in"], user_id)
    session_id: int = await conn.fetchval(q["console-session-insert"], user_id)
    return session_id


def cookie(signer: TokenSigner, settings: Settings, session_id: int) -> Cookie:
    """The Set-Cookie for a new session."""
    return Cookie(
        key=COOKIE, value=signer.sign(Purpose.CONSOLE_SESSION, session_id), path=PATH, httponly=True,
        samesite="lax", secure=settings.public_url.startswith("https://"),
    )


def cleared(settings: Settings) -> Cookie:
    """The Set-Cookie that removes the session cookie."""
    return Cookie(
        key=COOKIE, value="", path=PATH, httponly=True, samesite="lax", max_age=0,
        secure=settings.public_url.startswith("https://"),
    )
