"""Reading an import body as it streams in: CSV or NDJSON, one row at a time, with line numbers.

Both yield lists of ``(line, fields)``, one list per piece of the body as it
arrives (an async step per row cost more than reading the row), where
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
from collections.abc import AsyncIterator, Callable
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
Reader = Callable[[AsyncIterator[bytes]], AsyncIterator[list[Parsed]]]
"""Reads an import body: its pieces in, lists of parsed rows out."""


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


async def ndjson_rows(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[Parsed]]:
    """One JSON object per line; blank lines are skipped."""
    number = 0
    decode = msgspec.json.decode
    async for lines in _lines(chunks):
        parsed: list[Parsed] = []
        for line in lines:
            number += 1
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if not line.strip():
                continue
            try:
                value = decode(line)
            except msgspec.DecodeError as exc:
                parsed.append((number, f"not valid JSON: {exc}"))
                continue
            parsed.append((number, value if isinstance(value, dict) else "a line must hold one JSON object"))
        yield parsed


async def csv_rows(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[Parsed]]:
    """Rows of a CSV file with a header row, as dicts (see the module's docstring for the columns)."""
    header: list[str] | None = None
    layout = _Layout()
    async for records in _csv_records(chunks):
        parsed: list[Parsed] = []
        for line, cells in records:
            if isinstance(cells, str):
                if header is None:
                    raise Unprocessable(f"The header row is not readable: {cells}.")
                parsed.append((line, cells))
            elif header is None:
                header = _header(cells)
                layout = _Layout.of(header)
            elif len(cells) > len(header):
                parsed.append((line, f"{len(cells)} cells, but the header names {len(header)} columns"))
            else:
                parsed.append((line, _row(layout, cells)))
        yield parsed
    if header is None:
        raise Unprocessable("The CSV has no header row; the first row must name the columns (email is required).")


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


async def _csv_records(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[tuple[int, list[str] | str]]]:
    """CSV records with the number of the line each starts on, a list per block; blank lines skipped."""
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


def _parse_block(block: list[str], first: int, bad: set[int]) -> list[tuple[int, list[str] | str]]:
    records: list[tuple[int, list[str] | str]] = []
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
            records.append((start, f"not valid CSV: {exc}"))
            continue
        end = first + reader.line_num
        consumed = reader.line_num
        if bad and any(start <= n < end for n in bad):
            records.append((start, "not valid UTF-8"))
        elif "".join(cells).strip():
            records.append((start, cells))
    return records
