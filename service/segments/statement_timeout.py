"""A time limit on the queries a filter drives: the preview's count and the edition's fan-out.

A filter is data a client sends, and some are costly: 190 ``contains``
conditions over 400,000 readers ran 6.3 s.  Without a limit such a request
holds a pooled connection and a CPU of PostgreSQL for as long as it takes.
``SET LOCAL statement_timeout`` bounds it inside the request's transaction
(it ends with the transaction, so the pooled connection comes back as it was),
and a query stopped by it is a 422 that names the limit, not a 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from ..db.pool import Database
from ..errors import Unprocessable


@asynccontextmanager
async def statement_timeout(
    conn: asyncpg.Connection, db: Database, seconds: float, *, variable: str, what: str
) -> AsyncIterator[None]:
    """Limit each statement in the block (and after it, until the transaction ends) to ``seconds``; 0 is no limit.

    ``variable`` names the setting and ``what`` the work, for the 422's sentence. Call inside a transaction.
    """
    if seconds <= 0:
        yield
        return
    await conn.execute(db.q["statement-timeout-set-local"], str(max(1, round(seconds * 1000))))
    try:
        yield
    except asyncpg.QueryCanceledError:
        raise Unprocessable(
            f"{what} took longer than {seconds:g} s, the limit set by {variable}; "
            "narrow the filter (fewer or simpler conditions), or raise the limit.",
            extra={"timeout_seconds": seconds},
        ) from None
