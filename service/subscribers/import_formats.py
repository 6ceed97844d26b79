"""Reading an import body as it streams in: CSV or NDJSON, one row at a time, with line numbers.

Both yield, for each piece of the body as it arrives, an iterator of
``(line, fields)`` (an async step per row cost more than reading the row).
Rows are read as they are taken, not gathered into lists: a list of a
thousand parsed rows outlives the garbage collector's young generation, and
promoting them made full collections take half of an import's Python time.
``fields`` is a :data:`Fields` tuple of the row's values, in :data:`FIELDS`'
order, or a message when the line cannot be read at all.  Line numbers are
physical lines of the body, as an editor shows them, counting from 1.

CSV: a header row names the columns.  ``email`` is required; ``name``,
``agency`` and ``role`` are optional; ``lists`` holds list slugs separated by
``;`` or ``|``; ``attributes``, if present, holds a JSON object; every other
column becomes a text attribute named after its header (an empty cell adds
nothing).  Quoted cells may span lines.  A UTF-8 byte-order mark is ignored.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable, Iterator
from operator import itemgetter
from typing import Any

import msgspec

from ..errors import PayloadTooLarge, Unprocessable

MAX_LINE_BYTES = 1024 * 1024
FIELDS = ("email", "name", "agency", "role", "lists", "attributes")
"""What a row may hold, in the order of a :data:`Fields` tuple."""
_FIELD_SET = frozenset(FIELDS)
# Lines are handed to the CSV parser in blocks of about this many, cut where a record ends.
_BLOCK_LINES = 2000
_MAX_BLOCK_LINES = 50 * _BLOCK_LINES
# Lists cells whose slugs are remembered (a few combinations repeat over a whole import).
_MAX_LIST_CELLS = 1024

Fields = tuple[Any, Any, Any, Any, Any, Any]
"""A row's email, name, agency, role, lists and attributes, each None (or, from a CSV, "") when absent.

NDJSON gives each as decoded. A CSV gives text cells without surrounding space, the lists as a tuple
of slugs (empty when the cell is) and the attributes as decoded from their JSON cell, with the text
attributes of the other columns merged in.
"""
Parsed = tuple[int, Fields | str]
Reader = Callable[[AsyncIterator[bytes]], AsyncIterator[Iterator[Parsed]]]
"""Reads an import body: its pieces in, for each piece its rows, read as they are taken."""


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """Physical lines without their line break, a list per piece; refuses a line that never ends."""
    carry = b""
    async for chunk in chunks:
        if not chunk:
            continue
        parts = (carry + chunk).split(b"\n")
        carry = parts.pop()
        if len(carry) > MAX_LINE_BYTES:
            raise PayloadTooLarge(f"A line is longer than {MAX_LINE_BYTES} bytes.")
        if parts:
            yield [part.removesuffix(b"\r") for part in parts]
    if carry:
        yield [carry.removesuffix(b"\r")]


async def ndjson_rows(chunks: AsyncIterator[bytes]) -> AsyncIterator[Iterator[Parsed]]:
    """One JSON object per line; blank lines are skipped."""
    number = 0
    async for lines in _lines(chunks):
        yield _ndjson_lines(lines, number)
        number += len(lines)


def _ndjson_lines(lines: list[bytes], before: int) -> Iterator[Parsed]:
    """The rows of ``lines``, which follow line ``before`` of the body."""
    decode = msgspec.json.decode
    for number, line in enumerate(lines, before + 1):
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.strip():
            continue
        try:
            value = decode(line)
        except msgspec.DecodeError as exc:
            yield number, f"not valid JSON: {exc}"
            continue
        if not isinstance(value, dict):
            yield number, "a line must hold one JSON object"
        elif not _FIELD_SET.issuperset(value):
            yield number, f"unknown field(s) {', '.join(sorted(set(value) - _FIELD_SET))}"
        else:
            get = value.get
            yield number, (get("email"), get("name"), get("agency"), get("role"), get("lists"), get("attributes"))


async def csv_rows(chunks: AsyncIterator[bytes]) -> AsyncIterator[Iterator[Parsed]]:
    """Rows of a CSV file with a header row (see the module's docstring for the columns)."""
    columns = _Columns()
    async for block, first, bad in _csv_blocks(chunks):
        yield _csv_parsed(block, first, bad, columns)
    if columns.layout is None:
        raise Unprocessable("The CSV has no header row; the first row must name the columns (email is required).")


class _Columns:
    """A CSV body's header, once read."""

    def __init__(self) -> None:
        self.layout: _Layout | None = None


class _Layout:
    """Where a CSV's header puts each kind of column, worked out once instead of per cell."""

    def __init__(self, cells: list[str]) -> None:
        """The layout of a header row, or :class:`Unprocessable`."""
        names = [c.strip().lower().removeprefix("\ufeff") for c in cells]
        if "email" not in names:
            raise Unprocessable("The CSV header has no 'email' column.")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates or "" in names:
            raise Unprocessable(f"The CSV header repeats or leaves out column names: {duplicates or ['(empty)']}.")
        where = {name: i for i, name in enumerate(names)}
        self.width = len(names)
        self.pick = itemgetter(*(where.get(name, self.width) for name in FIELDS))
        """The cells of :data:`FIELDS` from a row padded to ``width + 1`` ("" for a column the header lacks)."""
        self.extra = tuple((i, name) for i, name in enumerate(names) if name not in _FIELD_SET)
        """Every other column, a text attribute: (index, name)."""
        self.slugs: dict[str, tuple[str, ...]] = {}
        """The slugs of each lists cell met so far (an import has a few different ones)."""

    def row(self, cells: list[str]) -> Fields | str:
        """A record's values; a row shorter than the header lacks the missing columns."""
        cells += [""] * (self.width + 1 - len(cells))
        email, name, agency, role, lists, cell = self.pick(cells)
        slugs = self.slugs.get(lists)
        if slugs is None:
            slugs = tuple(slug for part in lists.replace("|", ";").split(";") if (slug := part.strip()))
            if len(self.slugs) < _MAX_LIST_CELLS:
                self.slugs[lists] = slugs
        attributes = None
        if cell := cell.strip():
            try:
                attributes = msgspec.json.decode(cell)
            except msgspec.DecodeError:
                return "attributes: not valid JSON"
        if self.extra and (extra := {name: value for i, name in self.extra if (value := cells[i].strip())}):
            if not cell:
                attributes = {}
            if not isinstance(attributes, dict):
                return "attributes: must be a JSON object"
            attributes = {**attributes, **extra}
        return email.strip(), name.strip(), agency.strip(), role.strip(), slugs, attributes


async def _csv_blocks(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[list[str], int, set[int]]]:
    """Blocks of whole CSV records: their lines, the number of the first, those that were not UTF-8."""
    block: list[str] = []
    first = 1  # line number of block[0]
    bad: set[int] = set()
    odd_quotes = False  # inside a quoted cell at the end of the block so far
    number = 0
    async for lines in _lines(chunks):
        for raw in lines:
            number += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
                bad.add(number)
            block.append(text + "\n")
            if text.count('"') % 2:
                odd_quotes = not odd_quotes
            # A stray quote in an unquoted cell fools the count; past the hard limit the block is cut anyway.
            if (not odd_quotes and len(block) >= _BLOCK_LINES) or len(block) >= _MAX_BLOCK_LINES:
                yield block, first, bad
                first, block, bad, odd_quotes = number + 1, [], set(), False
    yield block, first, bad


def _csv_parsed(block: list[str], first: int, bad: set[int], columns: _Columns) -> Iterator[Parsed]:
    """The rows of a block of records that starts on line ``first``; the first record of the body is the header."""
    reader = csv.reader(block, strict=False)  # a stray quote in a cell is taken literally, as spreadsheets do
    consumed = 0
    while True:
        start = first + consumed
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            error = f"not valid CSV: {exc}"
        else:
            error = "not valid UTF-8" if bad and any(start <= n < first + reader.line_num for n in bad) else ""
        consumed = reader.line_num
        layout = columns.layout
        if error:
            if layout is None:
                raise Unprocessable(f"The header row is not readable: {error}.")
            yield start, error
        elif not (cells and (cells[0].strip() or "".join(cells).strip())):
            continue  # a blank line, or a record of blank cells
        elif layout is None:
            columns.layout = _Layout(cells)
        elif len(cells) > layout.width:
            yield start, f"{len(cells)} cells, but the header names {layout.width} columns"
        else:
            yield start, layout.row(cells)
