"""Who may do what in the console: the gate every console request passes, and the role guards.

``gate`` (on the console router) finds the session from the cookie and checks
the CSRF field of every unsafe request.  Every console handler also names the
least role it needs with one of ``requires_viewer``, ``requires_editor`` or
``requires_admin``: signed out is a 303 to the sign-in page, a role too low is
a 403 page.  :func:`service.console.routes.console_router` refuses to start if
a handler names none, so a forgotten guard fails closed.  Handlers get the
signed-in user as the ``operator`` dependency.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from ..accounts.users import Role
from ..audit import AuditTrail
from ..db.pool import Database
from ..runtime import runtime_of
from . import csrf, session
from .operator import Operator
from .web import ConsoleForbidden, FormRefused, SignedOut

__all__ = ["Operator", "Role", "gate", "provide_audit", "provide_operator", "requires_admin", "requires_editor",
           "requires_viewer"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OPERATOR = "console_operator"
_SESSION = "console_session"

AnyConnection = ASGIConnection[Any, Any, Any, Any]


def current_operator(connection: AnyConnection) -> Operator | None:
    """The operator the gate found for this request, or None when signed out."""
    found = getattr(connection.state, _OPERATOR, None)
    return found if isinstance(found, Operator) else None


def current_session_id(connection: AnyConnection) -> int | None:
    """The live session's id the gate found for this request, or None."""
    found = getattr(connection.state, _SESSION, None)
    return found if isinstance(found, int) else None


async def gate(connection: AnyConnection, _handler: BaseRouteHandler) -> None:
    """Console router guard: find the session, set the CSRF token for the page, check it on unsafe requests."""
    # Guards run before dependencies, so the runtime comes through its one typed accessor.
    runtime = runtime_of(connection.app.state)
    db, settings, signer = runtime.db, runtime.settings, runtime.signer
    expected: str | None = None
    session_id = session.session_id_from(signer, connection.cookies.get(session.COOKIE))
    if session_id is not None:
        async with db.transaction() as conn:
            live = await session.load(conn, db.q, settings, session_id)
        if live is not None:
            setattr(connection.state, _OPERATOR, live.operator)
            setattr(connection.state, _SESSION, live.id)
            expected = csrf.session_token(signer, live.id)
    if expected is None and (nonce := csrf.nonce_from(connection.cookies.get(csrf.PRE_SESSION_COOKIE))) is not None:
        expected = csrf.pre_session_token(signer, nonce)
    setattr(connection.state, csrf.STATE_KEY, expected)
    if connection.scope.get("method") in _SAFE_METHODS:
        return
    presented = ""
    if isinstance(connection, Request):
        value = (await connection.form()).get(csrf.FIELD)
        presented = value if isinstance(value, str) else ""
    if not csrf.passes(connection, presented, expected):
        if current_operator(connection) is None and session_id is not None:
            raise SignedOut("/console/")  # the session ended while the form was open: sign in again
        raise FormRefused("This form has expired or did not come from this site. Go back, reload the page and "
                          "try again.")


def _requires(role: Role) -> Callable[[AnyConnection, BaseRouteHandler], Awaitable[None]]:
    async def guard(connection: AnyConnection, _handler: BaseRouteHandler) -> None:
        operator = current_operator(connection)
        if operator is None:
            if connection.scope.get("method") not in _SAFE_METHODS:
                raise SignedOut("/console/")  # after signing in, a GET to a form's action would be a 405
            query = connection.scope.get("query_string", b"").decode("latin-1")
            raise SignedOut(connection.scope["path"] + (f"?{query}" if query else ""))
        if not operator.may(role):
            raise ConsoleForbidden(f"This needs the {role} role; you are signed in as {operator.role}.")

    guard.__name__ = guard.__qualname__ = f"requires_{role}"
    guard.__doc__ = f"Handler guard: signed in with the {role} role or above."
    return guard


requires_viewer = _requires("viewer")
requires_editor = _requires("editor")
requires_admin = _requires("admin")
ROLE_GUARDS = (requires_viewer, requires_editor, requires_admin)


def provide_operator(request: Request[Any, Any, Any]) -> Operator:
    """The ``operator`` dependency: the signed-in user (a role guard has already made sure there is one)."""
    operator = current_operator(request)
    if operator is None:
        raise SignedOut(request.url.path)
    return operator


def provide_audit(conn: asyncpg.Connection, db: Database, operator: Operator) -> AuditTrail:
    """The console's ``audit`` dependency: entries name the signed-in user's email."""
    return AuditTrail(conn, db.q, operator.email)
