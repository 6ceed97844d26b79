"""Opaque keyset cursors over row ids, one codec for every paged listing.

A cursor names the listing it came from, so one listing's cursor is refused by
another, and anything we did not hand out is a 422.
"""

from __future__ import annotations

import base64
import binascii

from .errors import Unprocessable


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
