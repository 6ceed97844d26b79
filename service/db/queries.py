"""Named SQL queries from ``service/sql/queries/*.sql``, loaded and checked at start.

Each query starts with a ``-- name: some-name`` line followed by comment lines
saying what it is for, then the SQL.  :func:`check_queries` prepares every
query against the database at start-up, so a typo or a wrong column stops the
service before it takes traffic rather than in the middle of a send.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib.resources.abc import Traversable

import asyncpg

from .sql_files import sql_files

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z0-9][a-z0-9-]*)\s*$", re.MULTILINE)


class QueryError(RuntimeError):
    """A query file is malformed or a query does not prepare."""


class Queries(Mapping[str, str]):
    """Read-only mapping of query name to SQL text."""

    def __init__(self, queries: dict[str, str]) -> None:
        self._queries = queries

    def __getitem__(self, name: str) -> str:
        try:
            return self._queries[name]
        except KeyError:
            raise QueryError(f"no query named {name!r} in service/sql/queries") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._queries)

    def __len__(self) -> int:
        return len(self._queries)


def load_queries(folder: Traversable) -> Queries:
    """Parse every ``*.sql`` file in ``folder``; none at all, duplicate or empty queries are errors."""
    queries: dict[str, str] = {}
    paths = sql_files(folder)
    if not paths:
        # An installation without its package data must not start and answer 500s.
        raise QueryError(f"no query files found in {folder}; the installation is incomplete")
    for path in paths:
        text = path.read_text(encoding="utf-8")
        marks = list(_NAME_LINE.finditer(text))
        if not marks or text[: marks[0].start()].strip():
            raise QueryError(f"{path.name}: every query must start with a '-- name: …' line")
        for mark, following in zip(marks, [*marks[1:], None], strict=True):
            body = text[mark.end() : following.start() if following else len(text)]
            sql = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--")).strip()
            sql = sql.rstrip(";").strip()
            name = mark[1]
            if not sql:
                raise QueryError(f"{path.name}: query {name!r} is empty")
            if name in queries:
                raise QueryError(f"{path.name}: query {name!r} is defined twice")
            queries[name] = sql
    return Queries(queries)


async def check_queries(conn: asyncpg.Connection, queries: Queries) -> None:
    """Prepare every query once; raise :class:`QueryError` naming the first that fails."""
    for name, sql in queries.items():
        try:
            await conn.prepare(sql)
        except asyncpg.PostgresError as exc:
            raise QueryError(f"query {name!r} does not prepare: {exc}") from exc
