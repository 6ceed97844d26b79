"""Importing people who consented elsewhere: rows checked in Python, merged in batches as the body arrives.

The body is read and checked a batch of rows at a time; each full batch is
sent to PostgreSQL, which works on it on the database's core while Python
reads and checks the next batch on its own. While every batch so far named
new people only, the next is written as new people only: their ids drawn
(``subscribers-import-ids``), then the people, their lists and consent records
each with ``COPY``, from a savepoint (service/subscribers/import_copy.py). A
batch that meets someone held is sent again, and every later batch from then
on, as one text per column to one statement (``subscribers-import-new``),
which creates the new people, their lists and consent records and stages the
rows for addresses already held in the unlogged ``import_staging`` table.
At the end, when there are staged rows, a few
set-based statements merge them knowing every row of the body
(service/sql/queries/import_staging.sql, subscribers.sql, subscriptions.sql):
repeats are settled, people are brought up to date, then one statement writes
their lists and consent records. An address repeated in the body: the last row
wins, whichever batches the rows fell in; a suppressed address is skipped.
The caller's transaction spans the whole import: a stream that breaks off
leaves nothing half-imported.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import msgspec
import structlog

from ..db.queries import Queries
from ..errors import InvalidValue
from .import_copy import CONSENT_COLUMNS, PEOPLE_COLUMNS, SUBSCRIPTION_COLUMNS, CopyRows
from .import_formats import Fields, Reader, csv_rows, ndjson_rows
from .schemas import ImportResult, InvalidLine
from .validation import clean_name, holds_nul, normalise_email

log = structlog.get_logger(__name__)

FORMATS: dict[str, Reader] = {
    "text/csv": csv_rows,
    "application/x-ndjson": ndjson_rows,
    "application/jsonl": ndjson_rows,
}
MAX_REPORTED = 1000
# Rows per batch: large enough that a statement's fixed costs do not count, small enough that
# the database starts early and the last batch, which nothing overlaps, is short.
BATCH_ROWS = 10_000
# Batches sent as new people only, each from a savepoint of its own: a transaction's first 64
# subtransactions are kept where every other session's snapshot finds them; past that, each
# snapshot looks the import's rows up in pg_subtrans while it runs.
_MAX_SAVEPOINTS = 48
# Rows read and checked between turns given to the batch in flight (about 1 ms of reading).
_TURN_ROWS = 256
# Distinct combinations of lists remembered with their array literals (an import has a few).
_MAX_COMBINATIONS = 1024


class _Known(msgspec.Struct, frozen=True):
    agencies: frozenset[str]
    roles: frozenset[str]
    lists: dict[str, int]
    combinations: dict[tuple[str, ...], tuple[str, str]]
    """The array literals (slugs, ids) of each combination of lists met so far, by the row's slugs."""


class _Tally(msgspec.Struct):
    checked: int = 0
    """Rows that passed the checks (merged or skipped)."""
    invalid_total: int = 0
    invalid: list[InvalidLine] = msgspec.field(default_factory=list)

    def refuse(self, line: int, detail: str) -> None:
        self.invalid_total += 1
        if len(self.invalid) < MAX_REPORTED:
            self.invalid.append(InvalidLine(line=line, detail=detail))


class _Batch:
    """Checked rows as columns, the shape the batch statement takes them in (and no object per row).

    One row per address as written is sent: a later row for the same address takes the earlier
    one's place, as the last row wins. (Addresses that differ only in case are told apart by the
    database, which knows its own lower-casing: subscribers-import-new.)
    """

    __slots__ = ("_copy", "agencies", "attributes", "emails", "lines", "list_ids", "lists", "names", "roles")

    def __init__(self) -> None:
        self.lines: list[int] = []
        self.emails: list[str] = []
        self.names: list[str | None] = []
        self.agencies: list[str | None] = []
        self.roles: list[str | None] = []
        self.attributes: list[str | None] = []
        self.lists: list[str] = []
        self.list_ids: list[str] = []
        self._copy: CopyRows | None = None

    def __len__(self) -> int:
        return len(self.lines)

    def add(self, line: int, email: str, name: str | None, agency: str | None, role: str | None,
            attributes: str | None, lists: str, list_ids: str) -> None:
        """One checked row (repeats are settled when the batch is sent: :meth:`columns`)."""
        self.lines.append(line)
        self.emails.append(email)
        self.names.append(name)
        self.agencies.append(agency)
        self.roles.append(role)
        self.attributes.append(attributes)
        self.lists.append(lists)
        self.list_ids.append(list_ids)

    def settle(self) -> None:
        """Keep one row per address as written: the place of its first row, the values of its last.

        Looked for once per batch (most have no repeats); settling again changes nothing.
        """
        last = {email: row for row, email in enumerate(self.emails)}
        if len(last) < len(self.emails):
            for name in ("lines", "emails", "names", "agencies", "roles", "attributes", "lists", "list_ids"):
                column = getattr(self, name)
                setattr(self, name, [column[row] for row in last.values()])

    def columns(self) -> tuple[str, ...]:
        """The columns in the order of the batch statement's parameters, one row per address.

        Each column is one text, its values a line each (absent ones empty), which the statement
        splits (``string_to_array``): asyncpg spent more CPU encoding 10,000-element arrays, two
        abstract-class checks per element, than the rows took to read and check. No checked value
        holds a line break (names and addresses refuse control characters, attributes are JSON,
        slugs are ``[a-z0-9_-]``); one that did would shift every later value of its column onto
        the next row, so that is refused here.
        """
        self.settle()
        values: tuple[list[Any], ...] = (
            self.emails, self.names, self.agencies, self.roles, self.attributes, self.lists, self.list_ids)
        texts = "\n".join(map(str, self.lines)), *("\n".join(value or "" for value in column) for column in values)
        if any(text.count("\n") != len(self.lines) - 1 for text in texts):
            raise ValueError("a value of an import batch holds a line break")
        return texts

    def copy_rows(self) -> CopyRows:
        """The batch as COPY text, one row per address, but for the people's ids (built once)."""
        if self._copy is None:
            self.settle()
            self._copy = CopyRows(self.lines, self.emails, self.names, self.agencies, self.roles, self.attributes,
                                  self.lists, self.list_ids)
        return self._copy


class _Merge:
    """What the batches of one import did so far, and the merge of what they staged."""

    def __init__(self, conn: asyncpg.Connection, q: Queries) -> None:
        self.conn = conn
        self.q = q
        self.import_id = uuid.uuid4()
        self.created = array("q")
        """The people the batches created, and the line each came from (``lines``)."""
        self.lines = array("l")
        self.staged = 0
        self.fresh = True
        """Whether the next batch is written as new people only (with COPY: :meth:`_fresh`)."""
        self.savepoints = 0

    @property
    def writes_fresh(self) -> bool:
        """Whether the next batch is written as new people only (:meth:`_fresh`)."""
        return self.fresh and self.savepoints < _MAX_SAVEPOINTS

    async def send(self, batch: _Batch) -> asyncio.Future[None]:
        """Start merging ``batch``; return once its main work is on its way, with the task that ends its merge.

        The main work is the people's COPY for new people, the batch statement otherwise. Reading
        the next rows waits meanwhile: what comes before (the savepoint, the ids or the prepare)
        is round trips, and each waited behind a chunk of reading while the database sat idle
        (about 55 ms a batch: 0.5 s of 3.2 s for 100,000 new people).
        """
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def note_sent(_: object = None) -> None:
            if not sent.done():
                sent.set_result(None)

        task = asyncio.ensure_future(self.add(batch, note_sent))
        task.add_done_callback(note_sent)  # a batch that fails before its statement is sent
        try:
            await sent
        except BaseException:
            task.cancel()
            raise
        return task

    async def add(self, batch: _Batch, sent: Callable[[], None] | None = None) -> None:
        """Send one batch: its new people are created, its other rows staged (``sent`` called as its work starts)."""
        if self.writes_fresh and await self._fresh(batch, sent):
            return
        row = await _planned(self.conn, self.q["subscribers-import-new"], self.import_id, *batch.columns(), sent=sent)
        self.created.extend(row["ids"])
        self.lines.extend(row["lines"])
        self.staged += row["staged"]

    async def _fresh(self, batch: _Batch, sent: Callable[[], None] | None) -> bool:
        """Write the batch as new people only, with COPY, from a savepoint; False (and no more such batches)
        when one is held.

        A batch that meets someone held is then sent again by the caller, its work done twice, so
        an import of new people with a repeat or two spends one batch on it, not every batch.
        """
        self.savepoints += 1
        rows = batch.copy_rows()
        try:
            async with self.conn.transaction():
                ids = await self.conn.fetchval(self.q["subscribers-import-ids"], "\n".join(batch.emails))
                bodies = rows.bodies(ids)
                if sent is not None:
                    sent()
                for table, body, columns in (("subscribers", bodies.people, PEOPLE_COLUMNS),
                                             ("subscriptions", bodies.subscriptions, SUBSCRIPTION_COLUMNS),
                                             ("consents", bodies.consents, CONSENT_COLUMNS)):
                    if body:
                        await self.conn.copy_to_table(table, source=_once(body), columns=columns)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "subscribers_email_key":
                raise
            self.fresh = False
            return False
        self.created.extend(bodies.ids)
        self.lines.extend(bodies.lines)
        return True

    async def finish(self, tally: _Tally) -> ImportResult:
        """Merge the staged rows, knowing every row of the body; the counts of the whole import."""
        conn, q, import_id = self.conn, self.q, self.import_id
        merge_started = time.perf_counter()
        created, members = len(self.created), len(self.created)
        if self.staged:
            await conn.execute(q["import-staging-analyze"])
            if _planned_rows((await _planned(conn, q["import-staging-estimate"], import_id))[0]) < self.staged / 2:
                await conn.execute(q["import-plan-hash-joins"])
            if self.created:
                undone = (await _planned(conn, q["subscribers-import-supersede"], import_id, self.created,
                                         self.lines))[0]
                created, members = created - undone, members - undone
            await _planned(conn, q["import-staging-settle"], import_id)
            created_ids = (await _planned(conn, q["subscribers-import"], import_id))[0]
            members += (await _planned(conn, q["subscriptions-import"], import_id, created_ids))[0]
            created += len(created_ids)
            await _planned(conn, q["import-staging-clear"], import_id)
        updated = members - created
        skipped = tally.checked - members
        log.info("import_done", created=created, updated=updated, skipped=skipped, invalid=tally.invalid_total,
                 staged=self.staged, merge_ms=round((time.perf_counter() - merge_started) * 1000))
        return ImportResult(created=created, updated=updated, skipped=skipped, invalid=tally.invalid,
                            invalid_total=tally.invalid_total)


async def import_stream(conn: asyncpg.Connection, q: Queries, rows: Reader, chunks: AsyncIterator[bytes],
                        *, batch_rows: int = BATCH_ROWS) -> ImportResult:
    """Read ``chunks`` with the ``rows`` reader and import every valid row; report the others by line.

    Each batch of checked rows (``batch_rows``, the first few fewer) is merged while the next one is read.
    """
    known = await _known(conn, q)
    await conn.execute(q["import-plan-settings"])
    merge = _Merge(conn, q)
    tally = _Tally()
    batch = _Batch()
    # The first batches are smaller, so that the database starts while most of the body is unread.
    limit = max(1, batch_rows // 8)
    sending: asyncio.Future[None] | None = None
    try:
        async for parsed in rows(chunks):
            for line, fields in parsed:
                if isinstance(fields, str):
                    tally.refuse(line, fields)
                    continue
                try:
                    _check(line, fields, known, batch)
                except InvalidValue as exc:
                    tally.refuse(line, str(exc))
                    continue
                tally.checked += 1
                if len(batch) >= limit:
                    if sending is not None:
                        if merge.writes_fresh:
                            batch.copy_rows()  # while the batch in flight is written, not after
                        await sending
                    sending = await merge.send(batch)
                    batch = _Batch()
                    limit = min(batch_rows, 2 * limit)
                elif not tally.checked % _TURN_ROWS:
                    # The batch in flight takes several round trips (its ids, then a COPY per table):
                    # each answer waits for the reader's turn to end, so turns are kept short.
                    await asyncio.sleep(0)
            # Reading may never wait for the network (a body that is already buffered): give the
            # batch in flight its turn, to send its statement or take its answer.
            await asyncio.sleep(0)
        if sending is not None:
            await sending
            sending = None
        if batch:
            await merge.add(batch)
    finally:
        if sending is not None:  # reading failed with a batch in flight (or just answered): end it, then fail
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
    return await merge.finish(tally)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    """``body`` as the one piece of a COPY's source (a file-like source is read in a worker thread)."""
    yield body


async def _planned(conn: asyncpg.Connection, sql: str, *args: Any, sent: Callable[[], None] | None = None) -> Any:
    """The first row ``sql`` returns, planned for these values (``sent`` called as the statement goes).

    A statement prepared afresh is planned for the values of its first run; one kept in the
    connection's cache may be given a generic plan after five imports, and a plan that suits
    ten rows walks 100,000 with nested loops.
    """
    statement = await conn.prepare(sql)
    if sent is not None:
        sent()  # asyncpg writes the statement before fetchrow first waits, so the caller wakes after that
    return await statement.fetchrow(*args)


def _planned_rows(plan: Any) -> float:
    """The rows an ``EXPLAIN (FORMAT JSON)`` expects (JSON text, or decoded by the pool's codec)."""
    if isinstance(plan, str):
        plan = msgspec.json.decode(plan)
    return float(plan[0]["Plan"]["Plan Rows"])


async def _known(conn: asyncpg.Connection, q: Queries) -> _Known:
    rows = await conn.fetch(q["import-known-terms"])
    agencies = frozenset(r["slug"] for r in rows if r["kind"] == "agency")
    roles = frozenset(r["slug"] for r in rows if r["kind"] == "role")
    return _Known(agencies, roles, {r["slug"]: r["id"] for r in rows if r["kind"] == "list"}, {})


def _check(line: int, fields: Fields, known: _Known, batch: _Batch) -> None:
    """Add one row's values, checked against the known slugs, to ``batch``; or :class:`InvalidValue`."""
    email, name, agency, role, lists, attributes = fields
    email = _text(email, "email")
    if email is None:
        raise InvalidValue("email: missing")
    try:
        email = normalise_email(email)
    except InvalidValue as exc:
        raise InvalidValue(f"email: {exc}") from exc
    name = _text(name, "name")
    if name is not None:
        name = clean_name(name) or None
    agency = _text(agency, "agency")
    if agency is not None and agency not in known.agencies:
        raise InvalidValue(f"agency: there is no agency '{agency}'")
    role = _text(role, "role")
    if role is not None and role not in known.roles:
        raise InvalidValue(f"role: there is no role '{role}'")
    slugs, list_ids = _lists(lists, known)
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
    batch.add(line, email, name, agency, role, encoded, slugs, list_ids)


def _lists(lists: Any, known: _Known) -> tuple[str, str]:
    """A row's lists as array literals of their slugs (repeats dropped, in order) and of their ids."""
    if not isinstance(lists, (list, tuple)) or not lists:
        raise InvalidValue("lists: give at least one list slug")
    try:
        key = tuple(lists)
        return known.combinations[key]
    except KeyError:
        pass
    except TypeError:  # a list or a dict in the list: not hashable
        raise InvalidValue("lists: give at least one list slug") from None
    list_ids = known.lists
    if not all(isinstance(s, str) for s in lists):
        raise InvalidValue("lists: give at least one list slug")
    missing = [s for s in lists if s not in list_ids]
    if missing:
        raise InvalidValue(f"lists: there is no list {', '.join(repr(s) for s in missing)}")
    slugs = list(dict.fromkeys(lists))
    # Slugs are checked against the lists held, whose slugs are [a-z0-9_-]: nothing to quote.
    literals = "{" + ",".join(slugs) + "}", "{" + ",".join(str(list_ids[s]) for s in slugs) + "}"
    if len(known.combinations) < _MAX_COMBINATIONS:
        known.combinations[key] = literals
    return literals


def _text(value: Any, name: str) -> str | None:
    """A text field's value, None when absent or empty."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"{name}: must be text")
    return value
