"""Importing people who consented elsewhere: rows checked in Python, streamed with COPY, merged set-based.

Each checked row is streamed into the unlogged ``import_staging`` table with
one COPY that runs while the body is still arriving and being read, so that
PostgreSQL stores rows on one core while Python reads them on the other. The
rows are tagged with the import's id; at the end a few set-based statements
merge them all (service/sql/queries/import_staging.sql, subscribers.sql and
subscriptions.sql): superseded and suppressed rows are dropped, people are
created or brought up to date, then one statement writes their lists and
consent records. The caller's
transaction spans the whole import: a stream that breaks off leaves nothing
half-imported.  An address repeated in the body: the last row wins.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import msgspec
import structlog

from ..db.queries import Queries
from ..errors import InvalidValue
from .import_formats import Parsed, Reader, csv_rows, ndjson_rows
from .schemas import ImportResult, InvalidLine
from .validation import clean_name, holds_nul, normalise_email

log = structlog.get_logger(__name__)

FORMATS: dict[str, Reader] = {
    "text/csv": csv_rows,
    "application/x-ndjson": ndjson_rows,
    "application/jsonl": ndjson_rows,
}
MAX_REPORTED = 1000
_FIELDS = frozenset({"email", "name", "agency", "role", "lists", "attributes"})


_STAGING = "import_staging"
_STAGED_COLUMNS = ("import_id", "line", "email", "name", "agency", "role", "attributes", "lists", "list_ids")
_Row = tuple[uuid.UUID, int, str, str | None, str | None, str | None, str | None, list[str], list[int]]
"""A checked row as staged: import id, line, email, name, agency, role, attributes (JSON text), list slugs, list ids."""


class _Known(msgspec.Struct, frozen=True):
    agencies: frozenset[str]
    roles: frozenset[str]
    lists: dict[str, int]
    """List ids by slug: rows are staged with their lists' ids, so the merge joins no lists."""


class _Tally(msgspec.Struct):
    staged: int = 0
    invalid_total: int = 0
    invalid: list[InvalidLine] = msgspec.field(default_factory=list)

    def refuse(self, line: int, detail: str) -> None:
        self.invalid_total += 1
        if len(self.invalid) < MAX_REPORTED:
            self.invalid.append(InvalidLine(line=line, detail=detail))


async def import_stream(conn: asyncpg.Connection, q: Queries, rows: Reader,
                        chunks: AsyncIterator[bytes]) -> ImportResult:
    """Read ``chunks`` with the ``rows`` reader and import every valid row; report the others by line."""
    known = await _known(conn, q)
    import_id = uuid.uuid4()
    tally = _Tally()
    await conn.copy_records_to_table(_STAGING, records=_checked(rows(chunks), import_id, known, tally),
                                     columns=_STAGED_COLUMNS)
    merge_started = time.perf_counter()
    await conn.execute(q["import-plan-settings"])
    await conn.execute(q["import-staging-analyze"])
    await conn.execute(q["import-staging-settle"], import_id)
    created_ids = await conn.fetchval(q["subscribers-import"], import_id)
    members = await conn.fetchval(q["subscriptions-import"], import_id, created_ids)
    created = len(created_ids)
    await conn.execute(q["import-staging-clear"], import_id)
    updated = members - created
    skipped = tally.staged - members
    log.info("import_done", created=created, updated=updated, skipped=skipped, invalid=tally.invalid_total,
             merge_ms=round((time.perf_counter() - merge_started) * 1000))
    return ImportResult(created=created, updated=updated, skipped=skipped, invalid=tally.invalid,
                        invalid_total=tally.invalid_total)


async def _checked(batches: AsyncIterator[Iterator[Parsed]], import_id: uuid.UUID,
                   known: _Known, tally: _Tally) -> AsyncIterator[_Row]:
    """The rows worth staging, as COPY takes them; the others are counted and reported in ``tally``."""
    async for batch in batches:
        for line, fields in batch:
            if isinstance(fields, str):
                tally.refuse(line, fields)
                continue
            try:
                row = _check(import_id, line, fields, known)
            except InvalidValue as exc:
                tally.refuse(line, str(exc))
                continue
            tally.staged += 1
            yield row


async def _known(conn: asyncpg.Connection, q: Queries) -> _Known:
    rows = await conn.fetch(q["import-known-terms"])
    agencies = frozenset(r["slug"] for r in rows if r["kind"] == "agency")
    roles = frozenset(r["slug"] for r in rows if r["kind"] == "role")
    return _Known(agencies, roles, {r["slug"]: r["id"] for r in rows if r["kind"] == "list"})


def _check(import_id: uuid.UUID, line: int, fields: dict[str, Any], known: _Known) -> _Row:
    """One row's values checked against the known slugs, or :class:`InvalidValue` saying what is wrong."""
    if not _FIELDS.issuperset(fields):
        raise InvalidValue(f"unknown field(s) {', '.join(sorted(set(fields) - _FIELDS))}")
    get = fields.get
    email = _text(get("email"), "email")
    if email is None:
        raise InvalidValue("email: missing")
    try:
        email = normalise_email(email)
    except InvalidValue as exc:
        raise InvalidValue(f"email: {exc}") from exc
    name = _text(get("name"), "name")
    if name is not None:
        name = clean_name(name) or None
    agency = _text(get("agency"), "agency")
    if agency is not None and agency not in known.agencies:
        raise InvalidValue(f"agency: there is no agency '{agency}'")
    role = _text(get("role"), "role")
    if role is not None and role not in known.roles:
        raise InvalidValue(f"role: there is no role '{role}'")
    lists = get("lists")
    if not isinstance(lists, list) or not lists:
        raise InvalidValue("lists: give at least one list slug")
    list_ids = known.lists
    try:
        slugs = list(dict.fromkeys(lists))  # a list or a dict in the list fails here: not hashable
        ids = [list_ids[s] for s in slugs]
    except (KeyError, TypeError):
        if not all(isinstance(s, str) for s in lists):
            raise InvalidValue("lists: give at least one list slug") from None
        missing = [s for s in lists if s not in list_ids]
        raise InvalidValue(f"lists: there is no list {', '.join(repr(s) for s in missing)}") from None
    attributes = get("attributes")
    encoded = None
    if attributes:
        if not isinstance(attributes, dict):
            raise InvalidValue("attributes: must be a JSON object")
        encoded = msgspec.json.encode(attributes).decode()
        # PostgreSQL's jsonb cannot hold U+0000, which JSON writes as \u0000; caught here so that only
        # this line is refused, not (by the database) the whole import. The walk runs only when the
        # text could hold one.
        if "\\u0000" in encoded and holds_nul(attributes):
            raise InvalidValue("attributes: text cannot contain the NUL character (\\u0000)")
    elif attributes is not None and not isinstance(attributes, dict):
        raise InvalidValue("attributes: must be a JSON object")
    return (import_id, line, email, name, agency, role, encoded, slugs, ids)


def _text(value: Any, name: str) -> str | None:
    """A text field's value, None when absent or empty."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"{name}: must be text")
    return value
