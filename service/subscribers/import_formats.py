"""Reading an import body as it streams in: CSV or NDJSON, one row at a time, with line numbers.

Both yield, for each piece of the body as it arrives, an iterator of
``(line, fields)`` (an async step per row cost more than reading the row).
Rows are read as they are taken, not gathered into lists: a list of a
thousand parsed rows outlives the garbage collector's young generation, and
promoting them made full collections take half of an import's Python time.
``fields`` is a dict of the row's values, or ``(line, message)`` when the line
cannot be read at all.  Line numbers are physical lines of the body, as an
editor shows them, counting from 1.

CSV: a header row names the columns.  ``email`` is required; ``name``,
``agency`` and ``role`` are optional; ``lists`` holds list slugs separated by
``;`` or ``|``; ``attributes``, if present, holds a JSON object; every other
column becomes a text attribute named after its header (an empty cell adds
nothing).  Quoted cells may span lines.  A UTF-8 byte-order mark is ignored.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NamedTuple

import msgspec

from ..errors import PayloadTooLarge, Unprocessable

MAX_LINE_BYTES = 1024 * 1024
_KNOWN = ("email", "name", "agency", "role", "lists", "attributes")
_TEXT = ("email", "name", "agency", "role")
# Lines are handed to the CSV parser in blocks of about this many, cut where a record ends.
_BLOCK_LINES = 2000
_MAX_BLOCK_LINES = 50 * _BLOCK_LINES

Parsed = tuple[int, dict[str, Any] | str]
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
        yield number, value if isinstance(value, dict) else "a line must hold one JSON object"


class _Columns:
    """The header row once read, and where it puts each kind of column."""

    def __init__(self) -> None:
        self.header: list[str] | None = None
        self.layout = _Layout()


async def csv_rows(chunks: AsyncIterator[bytes]) -> AsyncIterator[Iterator[Parsed]]:
    """Rows of a CSV file with a header row, as dicts (see the module's docstring for the columns)."""
    columns = _Columns()
    async for records in _csv_records(chunks):
        yield _csv_parsed(records, columns)
    if columns.header is None:
        raise Unprocessable("The CSV has no header row; the first row must name the columns (email is required).")


def _csv_parsed(records: Iterator[tuple[int, list[str] | str]], columns: _Columns) -> Iterator[Parsed]:
    """Records as rows; the first record read is the header."""
    for line, cells in records:
        header = columns.header
        if isinstance(cells, str):
            if header is None:
                raise Unprocessable(f"The header row is not readable: {cells}.")
            yield line, cells
        elif header is None:
            columns.header = _header(cells)
            columns.layout = _Layout.of(columns.header)
        elif len(cells) > len(header):
            yield line, f"{len(cells)} cells, but the header names {len(header)} columns"
        else:
            yield line, _row(columns.layout, cells)


def _header(cells: list[str]) -> list[str]:
    names = [c.strip().lower().removeprefix("\ufeff") for c in cells]
    if "email" not in names:
        raise Unprocessable("The CSV header has no 'email' column.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates or "" in names:
        raise Unprocessable(f"The CSV header repeats or leaves out column names: {duplicates or ['(empty)']}.")
    return names


class _Layout(NamedTuple):
    """Where a CSV's header puts each kind of column, worked out once instead of per cell."""

    text: tuple[tuple[int, str], ...] = ()
    """email, name, agency and role: (index, name)."""
    lists: int | None = None
    attributes: int | None = None
    extra: tuple[tuple[int, str], ...] = ()
    """Every other column, a text attribute: (index, name)."""

    @classmethod
    def of(cls, header: list[str]) -> _Layout:
        """The layout of a checked header."""
        where = {name: i for i, name in enumerate(header)}
        return cls(text=tuple((i, name) for i, name in enumerate(header) if name in _TEXT),
                   lists=where.get("lists"), attributes=where.get("attributes"),
                   extra=tuple((i, name) for i, name in enumerate(header) if name not in _KNOWN))


def _row(layout: _Layout, cells: list[str]) -> dict[str, Any] | str:
    """A record's values by name; a row shorter than the header lacks the missing columns."""
    count = len(cells)
    row: dict[str, Any] = {}
    for i, name in layout.text:
        if i < count and (value := cells[i].strip()):
            row[name] = value
    if layout.lists is not None and layout.lists < count:
        row["lists"] = [slug for part in cells[layout.lists].replace("|", ";").split(";") if (slug := part.strip())]
    if layout.attributes is not None and layout.attributes < count and (value := cells[layout.attributes].strip()):
        try:
            row["attributes"] = msgspec.json.decode(value)
        except msgspec.DecodeError:
            return "attributes: not valid JSON"
    extra = {name: value for i, name in layout.extra if i < count and (value := cells[i].strip())}
    if extra:
        attributes = row.get("attributes", {})
        if not isinstance(attributes, dict):
            return "attributes: must be a JSON object"
        row["attributes"] = {**attributes, **extra}
    return row


async def _csv_records(chunks: AsyncIterator[bytes]) -> AsyncIterator[Iterator[tuple[int, list[str] | str]]]:
    """CSV records with the number of the line each starts on, a block at a time; blank lines skipped."""
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
                yield _parse_block(block, first, bad)
                first, block, bad, odd_quotes = number + 1, [], set(), False
    yield _parse_block(block, first, bad)


def _parse_block(block: list[str], first: int, bad: set[int]) -> Iterator[tuple[int, list[str] | str]]:
    reader = csv.reader(block, strict=False)  # a stray quote in a cell is taken literally, as spreadsheets do
    consumed = 0
    while True:
        start = first + consumed
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            consumed = reader.line_num
            yield start, f"not valid CSV: {exc}"
            continue
        end = first + reader.line_num
        consumed = reader.line_num
        if bad and any(start <= n < end for n in bad):
            yield start, "not valid UTF-8"
        elif "".join(cells).strip():
            yield start, cells
