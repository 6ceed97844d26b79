"""Failed sign-ins slow the next ones, per account and per client address, in the database.

Keeping the counts in PostgreSQL means every process serving the console
agrees.  An account (the email as typed, known or not, so that the answer
says nothing about which accounts exist) waits from its 5th failure in 15
minutes, a client address from its 20th (an office behind one NAT
mistypes too): 30 seconds, doubling with each further failure, up to 15
minutes.
"""

from __future__ import annotations

import asyncpg

from ..db.queries import Queries

ACCOUNT_FAILURES = 5
CLIENT_FAILURES = 20


def keys(email: str, client: str) -> tuple[str, str]:
    """The account's and the client address's throttle keys."""
    return f"account:{email.strip().lower()[:320]}", f"client:{client}"


async def blocked(conn: asyncpg.Connection, q: Queries, email: str, client: str) -> bool:
    """Whether this account or this client must still wait before trying again."""
    return bool(await conn.fetchval(q["sign-in-blocked"], list(keys(email, client))))


async def failed(conn: asyncpg.Connection, q: Queries, email: str, client: str) -> None:
    """Count one failed sign-in against the account and the client."""
    account, address = keys(email, client)
    await conn.execute(q["sign-in-failed"], account, ACCOUNT_FAILURES)
    await conn.execute(q["sign-in-failed"], address, CLIENT_FAILURES)


async def succeeded(conn: asyncpg.Connection, q: Queries, email: str, client: str) -> None:
    """A correct password clears the account's failures (and old windows of any key are dropped)."""
    await conn.execute(q["sign-in-succeeded"], keys(email, client)[0])
    await conn.execute(q["sign-in-failures-forget"])
