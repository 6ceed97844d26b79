"""How many people a set of lists and a filter reach now: the number the preview shows."""

from __future__ import annotations

import asyncpg

from ..audience import with_filter
from ..db.pool import Database
from .compile import compile_filter
from .filter import Filter


async def count_audience(conn: asyncpg.Connection, db: Database, list_ids: list[int], node: Filter | None) -> int:
    """Count the audience of ``list_ids`` narrowed by ``node``, exactly as the fan-out would freeze it.

    ``audience-count`` takes the list ids as ``$1``, so the filter's parameters start at ``$2``.
    """
    fragment, params = compile_filter(node, first_param=2)
    count = await conn.fetchval(with_filter(db.q["audience-count"], fragment), list_ids, *params)
    return int(count)
