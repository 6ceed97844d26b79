"""Importing people who consented elsewhere: rows checked in Python, streamed with COPY, merged once.

Each checked row is streamed into the unlogged ``import_staging`` table with
COPY (the fastest way in), tagged with the import's id; at the end one
set-based statement merges them all (``import-merge`` in
service/sql/queries/import.sql), so the time is spent parsing, not waiting.
The caller's transaction spans the whole import: a stream that breaks off
leaves nothing half-imported.  An address repeated in the body: the last row
wins.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import msgspec
import structlog

from ..db.queries import Queries
from ..errors import InvalidValue
from .import_formats import Parsed, csv_rows, ndjson_rows
from .schemas import ImportResult, InvalidLine
from .validation import clean_name, holds_nul, normalise_email

log = structlog.get_logger(__name__)

FORMATS: dict[str, Callable[[AsyncIterator[bytes]], AsyncIterator[Parsed]]] = {
    "text/csv": csv_rows,
    "application/x-ndjson": ndjson_rows,
    "application/jsonl": ndjson_rows,
}
BATCH_ROWS = 2000
MAX_REPORTED = 1000
_FIELDS = {"email", "name", "agency", "role", "lists", "attributes"}


_STAGING = "import_staging"
_STAGED_COLUMNS = ("import_id", "line", "email", "name", "agency", "role", "attributes", "lists")
_Row = tuple[uuid.UUID, int, str, str | None, str | None, str | None, str | None, list[str]]
"""A checked row as staged: import id, line, email, name, agency, role, attributes (JSON text), lists."""


class _Known(msgspec.Struct, frozen=True):
    agencies: frozenset[str]
    roles: frozenset[str]
    lists: frozenset[str]


class _Tally(msgspec.Struct):
    created: int = 0
    updated: int = 0
    skipped: int = 0
    invalid_total: int = 0
    invalid: list[InvalidLine] = msgspec.field(default_factory=list)

    def refuse(self, line: int, detail: str) -> None:
        self.invalid_total += 1
        if len(self.invalid) < MAX_REPORTED:
            self.invalid.append(InvalidLine(line=line, detail=detail))


async def import_stream(conn: asyncpg.Connection, q: Queries,
                        rows: Callable[[AsyncIterator[bytes]], AsyncIterator[Parsed]],
                        chunks: AsyncIterator[bytes]) -> ImportResult:
    """Read ``chunks`` with the ``rows`` reader and import every valid row; report the others by line."""
    known = await _known(conn, q)
    import_id = uuid.uuid4()
    tally = _Tally()
    batch: list[_Row] = []
    async for line, fields in rows(chunks):
        if isinstance(fields, str):
            tally.refuse(line, fields)
            continue
        try:
            batch.append(_check(import_id, line, fields, known))
        except InvalidValue as exc:
            tally.refuse(line, str(exc))
            continue
        if len(batch) >= BATCH_ROWS:
            await conn.copy_records_to_table(_STAGING, records=batch, columns=_STAGED_COLUMNS)
            batch.clear()
    if batch:
        await conn.copy_records_to_table(_STAGING, records=batch, columns=_STAGED_COLUMNS)
    merge_started = time.perf_counter()
    merged = await conn.fetchrow(q["import-merge"], import_id)
    assert merged is not None, "an aggregate returns one row"
    await conn.execute(q["import-staging-clear"], import_id)
    tally.created, tally.updated = merged["created"], merged["updated"]
    tally.skipped = merged["staged"] - merged["created"] - merged["updated"]
    log.info("import_done", created=tally.created, updated=tally.updated, skipped=tally.skipped,
             invalid=tally.invalid_total, merge_ms=round((time.perf_counter() - merge_started) * 1000))
    return ImportResult(created=tally.created, updated=tally.updated, skipped=tally.skipped,
                        invalid=tally.invalid, invalid_total=tally.invalid_total)


async def _known(conn: asyncpg.Connection, q: Queries) -> _Known:
    rows = await conn.fetch(q["import-known-terms"])
    by_kind: dict[str, set[str]] = {"agency": set(), "role": set(), "list": set()}
    for r in rows:
        by_kind[r["kind"]].add(r["slug"])
    return _Known(frozenset(by_kind["agency"]), frozenset(by_kind["role"]), frozenset(by_kind["list"]))


def _check(import_id: uuid.UUID, line: int, fields: dict[str, Any], known: _Known) -> _Row:
    """One row's values checked against the known slugs, or :class:`InvalidValue` saying what is wrong."""
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise InvalidValue(f"unknown field(s) {', '.join(unknown)}")
    email = _text(fields, "email")
    if not email:
        raise InvalidValue("email: missing")
    try:
        email = normalise_email(email)
    except InvalidValue as exc:
        raise InvalidValue(f"email: {exc}") from exc
    name = clean_name(_text(fields, "name") or "") or None
    agency = _text(fields, "agency")
    if agency is not None and agency not in known.agencies:
        raise InvalidValue(f"agency: there is no agency '{agency}'")
    role = _text(fields, "role")
    if role is not None and role not in known.roles:
        raise InvalidValue(f"role: there is no role '{role}'")
    lists = fields.get("lists")
    if not isinstance(lists, list) or not lists or not all(isinstance(s, str) for s in lists):
        raise InvalidValue("lists: give at least one list slug")
    missing = [s for s in lists if s not in known.lists]
    if missing:
        raise InvalidValue(f"lists: there is no list {', '.join(repr(s) for s in missing)}")
    attributes = fields.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise InvalidValue("attributes: must be a JSON object")
    if holds_nul(attributes):
        # Caught here so that only this line is refused, not (by the database) the whole import.
        raise InvalidValue("attributes: text cannot contain the NUL character (\\u0000)")
    encoded = msgspec.json.encode(attributes).decode() if attributes else None
    return (import_id, line, email, name, agency, role, encoded, list(dict.fromkeys(lists)))


def _text(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"{name}: must be text")
    return value
