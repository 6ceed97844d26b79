"""The cursors of every paged listing: opaque keyset positions, checked when they come back.

Most listings page by row id (:func:`encode_cursor`): such a cursor names the listing it came
from, so one listing's cursor is refused by another.  Listings ordered by time page by
(timestamp, key) (:func:`encode_time_cursor`).  Anything we did not hand out is a 422.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from litestar.params import QueryParameter

from .errors import Unprocessable

Cursor = Annotated[
    str | None,
    QueryParameter(
        description="next_cursor of the previous page, passed back as it came: any other value is a 422",
        # Both codecs below write only these characters; the server, not the pattern, tells a real cursor.
        schema_extra={"pattern": "^[A-Za-z0-9_-]+$"},
    ),
]
"""The ``cursor`` query parameter of every paged listing."""


def encode_cursor(kind: str, last_id: int) -> str:
    """The cursor for the page after the row ``last_id`` of listing ``kind`` (one letter)."""
    return base64.urlsafe_b64encode(f"{kind}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> int:
    """The id after which the next page starts (0 without a cursor)."""
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if text[:1] == kind and text[1:].isdigit() and len(text) < 21:
            return int(text[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Unprocessable("cursor: this is not a cursor this API handed out; pass next_cursor as it came.")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_CURSOR = re.compile(r"(\d{1,17})-([0-9a-f]{2,128})")


def encode_time_cursor(at: datetime, key: bytes) -> str:
    """The cursor for the page after the row at (``at``, ``key``) of a listing ordered by time, then key."""
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{key.hex()}"


def decode_time_cursor(cursor: str | None) -> tuple[datetime | None, bytes | None]:
    """The (time, key) after which the next page starts ((None, None) without a cursor)."""
    if cursor is None:
        return None, None
    match = _TIME_CURSOR.fullmatch(cursor)
    if match is None or len(match[2]) % 2:
        raise Unprocessable("cursor: this is not a cursor this API handed out; pass next_cursor as it came.")
    return _EPOCH + timedelta(microseconds=int(match[1])), bytes.fromhex(match[2])
