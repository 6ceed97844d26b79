"""Reading import bodies: what each CSV or NDJSON line becomes, before any check of its values."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from service.errors import Unprocessable
from service.subscribers.import_formats import Parsed, Reader, csv_rows, ndjson_rows


async def _read(reader: Reader, body: bytes, piece: int = 7) -> list[Parsed]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), piece):
            yield body[start:start + piece]

    return [row async for parsed in reader(chunks()) for row in parsed]


async def test_csv_cells_become_a_row_of_the_header_s_fields() -> None:
    body = "\n".join([
        "Email, NAME ,lists,attributes,team,grade",
        ' ann@example.org , Ann ,"newsletter | training;;newsletter","{""fte"": 0.5, ""team"": ""x""}",north,',  # 2
        "bob@example.org,,newsletter",  # 3: shorter than the header
        ",,,,,",  # 4: blank cells only, skipped
        'cat@example.org,,newsletter,null,south,',  # 5: a text attribute beside a JSON null
        "dan@example.org,,newsletter,[1],,",  # 6: not an object, left for the check to refuse
        "eve@example.org,,newsletter,{,,",  # 7
        "fay@example.org,,,,,,",  # 8: one cell too many
    ]).encode()
    assert await _read(csv_rows, body) == [
        (2, ("ann@example.org", "Ann", "", "", ("newsletter", "training", "newsletter"), {"fte": 0.5, "team": "north"})),
        (3, ("bob@example.org", "", "", "", ("newsletter",), None)),
        (5, "attributes: must be a JSON object"),
        (6, ("dan@example.org", "", "", "", ("newsletter",), [1])),
        (7, "attributes: not valid JSON"),
        (8, "7 cells, but the header names 6 columns"),
    ]


@pytest.mark.parametrize(("body", "message"), [
    (b"name,lists\n", "The CSV header has no 'email' column."),
    (b"email,Email\n", "The CSV header repeats or leaves out column names: ['email']."),
    (b"\n\n", "The CSV has no header row; the first row must name the columns (email is required)."),
    (b"em\xe9il\n", "The header row is not readable: not valid UTF-8."),
])
async def test_a_csv_without_a_usable_header_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(Unprocessable, match=f"^{re.escape(message)}$"):
        await _read(csv_rows, body)


async def test_ndjson_objects_become_rows_and_unknown_fields_are_named() -> None:
    body = b'\xef\xbb\xbf{"email": "ann@example.org", "lists": ["newsletter"], "name": 7}\n\n' \
           b'{"email": "bob@example.org", "colour": "blue", "size": 1}\n[1]\n{"email": \n'
    rows = await _read(ndjson_rows, body)
    assert rows[:3] == [
        (1, ("ann@example.org", 7, None, None, ["newsletter"], None)),
        (3, "unknown field(s) colour, size"),
        (4, "a line must hold one JSON object"),
    ]
    assert rows[3][0] == 5 and str(rows[3][1]).startswith("not valid JSON: ")
