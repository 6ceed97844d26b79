"""What every provider webhook shares: the refusal, JSON decoding, addresses and status codes."""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Any

import msgspec

from ...errors import BadRequest, LetterboxError

_DSN_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
_DIAGNOSTIC_MAX = 1000


class WebhookRefused(LetterboxError):
    """The request could not be shown to come from the provider, or the provider is not configured."""

    status_code = 401

    def __init__(self, detail: str, *, challenge: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": challenge} if challenge else None)


def decode_json(body: bytes, *, what: str) -> Any:
    """The body as JSON, or a 400 saying it is not."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The {what} is not valid JSON.") from exc


def address(value: object) -> str | None:
    """A bare, lower-cased address from ``value`` (which may carry a display name), or None."""
    if not isinstance(value, str) or len(value) > 1000:
        return None
    addr = parseaddr(value)[1].strip().lower()
    return addr if "@" in addr and len(addr) <= 320 else None


def dsn_status(*texts: object) -> str | None:
    """The first RFC 3463 status code (``5.1.1``) found in ``texts``."""
    for text in texts:
        if isinstance(text, str) and (match := _DSN_STATUS.search(text)):
            return match.group(1)
    return None


def diagnostic(*texts: object) -> str | None:
    """The first non-empty text, cut to what an event stores."""
    for text in texts:
        if isinstance(text, str) and text.strip():
            return text.strip()[:_DIAGNOSTIC_MAX]
    return None
