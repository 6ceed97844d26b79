"""Operator accounts: create, list, disable, change role.

The CLI (``letterbox user …``) and the console's users page call the same
functions, so an account made either way is the same.  Disabling a user or
changing their role deletes their sessions in the same transaction: the next
request from any of their browsers is signed out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal, get_args

import asyncpg
import msgspec

from ..db.queries import Queries
from ..errors import Conflict, NotFound, Unprocessable
from .passwords import WeakPassword, hash_password

Role = Literal["viewer", "editor", "admin"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)


class User(msgspec.Struct, frozen=True):
    """An account as listed (never its password hash)."""

    id: int
    email: str
    role: Role
    disabled: bool
    created_at: datetime
    last_sign_in_at: datetime | None


def normalise_email(email: str) -> str:
    """The account's key: trimmed and lower-cased; :class:`Unprocessable` if it is no address."""
    value = email.strip().lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in value) or len(value) > 320:
        raise Unprocessable(f"{email!r} is not an e-mail address")
    return value


def check_role(role: str) -> Role:
    """``role`` if it is one of viewer, editor, admin; :class:`Unprocessable` otherwise."""
    for known in ROLES:
        if role == known:
            return known
    raise Unprocessable(f"role: expected one of {', '.join(ROLES)}, got {role!r}")


def _user(row: asyncpg.Record) -> User:
    return User(row["id"], row["email"], check_role(row["role"]), row["disabled"], row["created_at"],
                row["last_sign_in_at"])


async def create_user(conn: asyncpg.Connection, q: Queries, email: str, role: str, password: str | None) -> User:
    """Create an account; ``password`` None makes one that signs in only through OpenID Connect.

    :class:`Unprocessable` for a bad email, role or weak password, :class:`Conflict` for a taken email.
    """
    address, checked_role = normalise_email(email), check_role(role)
    try:
        hashed = None if password is None else await hash_password(password)
    except WeakPassword as exc:
        raise Unprocessable(str(exc)) from exc
    try:
        row = await conn.fetchrow(q["user-insert"], address, checked_role, hashed)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"There is already an account for {address}.") from exc
    assert row is not None
    return _user(row)


async def list_users(conn: asyncpg.Connection, q: Queries) -> list[User]:
    """Every account, oldest first."""
    return [_user(row) for row in await conn.fetch(q["user-list"])]


async def disable_user(conn: asyncpg.Connection, q: Queries, email: str) -> User:
    """Disable an account and sign it out everywhere; :class:`NotFound` if there is none."""
    row = await conn.fetchrow(q["user-disable"], normalise_email(email))
    if row is None:
        raise NotFound(f"There is no account for {email.strip()}.")
    await conn.execute(q["console-sessions-delete-for-user"], row["id"])
    return await get_user(conn, q, row["id"])


async def enable_user(conn: asyncpg.Connection, q: Queries, user_id: int) -> User:
    """Let a disabled account sign in again; :class:`NotFound` if there is none."""
    if await conn.fetchrow(q["user-enable"], user_id) is None:
        raise NotFound(f"There is no account {user_id}.")
    return await get_user(conn, q, user_id)


async def set_role(conn: asyncpg.Connection, q: Queries, user_id: int, role: str) -> tuple[Role, User]:
    """Change an account's role and sign it out everywhere; returns the old role and the account."""
    row = await conn.fetchrow(q["user-set-role"], user_id, check_role(role))
    if row is None:
        raise NotFound(f"There is no account {user_id}.")
    if row["old_role"] != row["role"]:
        await conn.execute(q["console-sessions-delete-for-user"], user_id)
    return check_role(row["old_role"]), await get_user(conn, q, user_id)


async def get_user(conn: asyncpg.Connection, q: Queries, user_id: int) -> User:
    """One account; :class:`NotFound` if there is none."""
    row = await conn.fetchrow(q["user-get"], user_id)
    if row is None:
        raise NotFound(f"There is no account {user_id}.")
    return _user(row)
