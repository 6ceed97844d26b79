"""Who an edition or a preview is for: a saved segment, or lists with an optional filter.

The one place that rule lives, for ``POST /v1/editions`` and ``POST /v1/segments/preview`` alike.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from ..db.queries import Queries
from ..errors import Unprocessable
from ..taxonomy.terms import resolve_lists
from .filter import Filter, parse_filter


class Target(msgspec.Struct, frozen=True):
    """The lists (ids, in the order named) and the parsed filter an audience is drawn from."""

    list_ids: list[int]
    filter: Filter | None


async def resolve_target(
    conn: asyncpg.Connection, q: Queries, *, segment: str | None, lists: list[str] | None, filter_: Any
) -> Target:
    """Resolve ``segment`` or ``lists`` + ``filter_``; a 422 for both, neither, or an unknown name."""
    if segment is not None:
        if lists or filter_ is not None:
            raise Unprocessable("Give either 'segment' or 'lists' (with an optional 'filter'), not both.")
        row = await conn.fetchrow(q["segment-get"], segment)
        if row is None:
            raise Unprocessable(f"There is no segment '{segment}'.")
        slugs, node = list(row["lists"]), parse_filter(row["filter"])
    elif not lists:
        raise Unprocessable("'lists' must name at least one list (or give a 'segment').")
    else:
        slugs, node = lists, parse_filter(filter_)
    return Target([ref.id for ref in await resolve_lists(conn, q, slugs)], node)
