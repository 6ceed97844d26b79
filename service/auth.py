"""API keys and scopes.

A key looks like ``lbk_<prefix>_<secret>``.  Only the prefix (to find the row)
and the SHA-256 of the secret are stored; the secret has 256 bits of entropy,
so a plain hash is enough, and comparison is constant-time.  Every ``/v1``
route names the scope it needs in its ``opt``; a route that forgets to name
one is treated as admin-only, so a mistake fails closed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Any, Final

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from .db.pool import Database
from .errors import Forbidden, Unauthorized
from .runtime import runtime_of

SCOPES: Final = (
    "editions:write",
    "editions:read",
    "subscribers:write",
    "subscribers:read",
    "bounces:write",
    "admin",
)
_KEY_PREFIX = "lbk"


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the key's name and scopes."""

    key_id: int | None
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """``admin`` grants every scope."""
        return "admin" in self.scopes or scope in self.scopes


class NewKey(msgspec.Struct, frozen=True):
    """A freshly generated key: ``token`` is shown once and never stored."""

    token: str
    prefix: str
    secret_hash: bytes


def generate_key() -> NewKey:
    """Make a new random key."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    return NewKey(f"{_KEY_PREFIX}_{prefix}_{secret}", prefix, hash_secret(secret))


def hash_secret(secret: str) -> bytes:
    """SHA-256 of the secret part of a key."""
    return hashlib.sha256(secret.encode()).digest()


def validate_scopes(scopes: Iterable[str]) -> list[str]:
    """Return the scopes, or raise ``ValueError`` naming an unknown one."""
    result = list(dict.fromkeys(scopes))
    unknown = [s for s in result if s not in SCOPES]
    if unknown or not result:
        raise ValueError(f"unknown scope(s) {unknown}; choose from {', '.join(SCOPES)}")
    return result


async def authenticate(db: Database, authorization: str | None, bootstrap_key: str | None) -> Principal:
    """Turn an ``Authorization`` header into a principal, or raise :class:`Unauthorized`."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("This endpoint needs an API key: send 'Authorization: Bearer <key>'.")
    presented = authorization[7:].strip()
    if bootstrap_key and hmac.compare_digest(presented.encode(), bootstrap_key.encode()):
        return Principal(None, "bootstrap", frozenset({"admin"}))
    parts = presented.split("_", 2)
    if len(parts) == 3 and parts[0] == _KEY_PREFIX:
        async with db.pool.acquire() as conn:
            row = await conn.fetchrow(db.q["api-key-by-prefix"], parts[1])
            if row is not None and hmac.compare_digest(hash_secret(parts[2]), row["secret_hash"]):
                await conn.execute(db.q["api-key-touch"], row["id"])
                return Principal(row["id"], row["name"], frozenset(row["scopes"]))
    raise Unauthorized("The API key is not valid or has been revoked.")


async def require_scope(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Litestar guard for every ``/v1`` route: authenticate, then check the route's scope."""
    scope: str = handler.opt.get("scope", "admin")
    runtime = runtime_of(connection.app.state)
    authorization = connection.headers.get("authorization")
    principal = await authenticate(runtime.db, authorization, runtime.settings.bootstrap_api_key)
    if not principal.allows(scope):
        raise Forbidden(f"This API key lacks the '{scope}' scope needed here.")
    connection.state.principal = principal
