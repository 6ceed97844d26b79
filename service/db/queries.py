"""Named SQL queries from ``service/sql/queries/*.sql``, loaded and checked at start.

Each query starts with a ``-- name: some-name`` line followed by comment lines
saying what it is for, then the SQL.  :func:`check_queries` prepares every
query against the database at start-up, so a typo or a wrong column stops the
service before it takes traffic rather than in the middle of a send.

A query with many parameters names them (``:subject``) instead of numbering them
(``$3``); it is run with :meth:`Queries.bind`, which checks that the values given
are exactly the names the query uses, so none can be passed in the wrong place.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from importlib.resources.abc import Traversable

import asyncpg

from .sql_files import sql_files

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z0-9][a-z0-9-]*)\s*$", re.MULTILINE)
# ``:name`` not preceded by another colon (``::type`` casts) or a word character; string literals
# are skipped (see _named_parameters).
_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_POSITIONAL = re.compile(r"\$\d")
_LITERAL = re.compile(r"'(?:[^']|'')*'")


class QueryError(RuntimeError):
    """A query file is malformed or a query does not prepare."""


class Queries(Mapping[str, str]):
    """Read-only mapping of query name to SQL text (``$n`` parameters), and :meth:`bind` for named ones."""

    def __init__(self, queries: dict[str, str], named: dict[str, tuple[str, ...]] | None = None) -> None:
        self._queries = queries
        self._named = named or {}

    def copy(self) -> Queries:
        """A copy of its own: each pool holds one, so that nothing done to one reaches another."""
        return Queries(dict(self._queries), self._named)

    def bind(self, name: str, **values: object) -> tuple[str, tuple[object, ...]]:
        """``(sql, arguments)`` for a query with named parameters: ``sql, args = q.bind("x", a=1)``.

        A value missing or left over is a :class:`QueryError`: the names are the query's contract.
        """
        sql = self[name]
        order = self._named.get(name)
        if order is None:
            raise QueryError(f"query {name!r} takes positional parameters; use q[{name!r}]")
        given = set(values)
        if given != set(order):
            missing, extra = sorted(set(order) - given), sorted(given - set(order))
            raise QueryError(f"query {name!r}: missing {missing}, unknown {extra}")
        return sql, tuple(values[parameter] for parameter in order)

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
    named: dict[str, tuple[str, ...]] = {}
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
            positional = _POSITIONAL.search(_LITERAL.sub("", sql)) is not None
            sql, order = _named_parameters(sql)
            if order:
                if positional:
                    raise QueryError(f"{path.name}: query {name!r} mixes $n and :name parameters")
                named[name] = order
            queries[name] = sql
    return Queries(queries, named)


def _named_parameters(sql: str) -> tuple[str, tuple[str, ...]]:
    """Turn ``:name`` parameters (outside string literals) into ``$n``; return the SQL and the names in order."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in order:
            order.append(match[1])
        return f"${order.index(match[1]) + 1}"

    pieces: list[str] = []
    last = 0
    for literal in _LITERAL.finditer(sql):
        pieces += [_NAMED.sub(number, sql[last : literal.start()]), literal[0]]
        last = literal.end()
    pieces.append(_NAMED.sub(number, sql[last:]))
    return "".join(pieces), tuple(order)


# (server version, applied migrations, query texts) this process has prepared every query against:
# another pool on a schema built by the same migrations (a second database cloned from the first,
# as every test's is) has the same answer, so it is not asked again.
_CHECKED: set[tuple[str, str]] = set()


async def check_queries(conn: asyncpg.Connection, queries: Queries) -> None:
    """Prepare every query once; raise :class:`QueryError` naming the first that fails."""
    schema = await _schema_fingerprint(conn)
    texts = hashlib.sha256("\0".join(f"{name}\0{sql}" for name, sql in queries.items()).encode()).hexdigest()
    key = (schema, texts) if schema is not None else None
    if key in _CHECKED:
        return
    for name, sql in queries.items():
        try:
            await conn.prepare(sql)
        except asyncpg.PostgresError as exc:
            raise QueryError(f"query {name!r} does not prepare: {exc}") from exc
    if key is not None:
        _CHECKED.add(key)


async def _schema_fingerprint(conn: asyncpg.Connection) -> str | None:
    """The server's version and the checksums of the applied migrations; None when there are none."""
    migrated = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not migrated:
        return None
    checksums = await conn.fetchval("SELECT string_agg(checksum, ',' ORDER BY version) FROM schema_migrations")
    version = await conn.fetchval("SHOW server_version")
    return f"{version}/{checksums}" if checksums else None
