"""What every provider webhook shares: the refusal, JSON decoding, addresses, texts and ids."""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

import msgspec

from ...errors import BadRequest, LetterboxError
from ..classify import find_status
from ..formats.common import clean_address

_DIAGNOSTIC_MAX = 1000
_EVENT_ID_MAX = 200


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
    """A bare, validated, lower-cased address from ``value`` (which may carry a display name), or None."""
    if not isinstance(value, str) or len(value) > 1000:
        return None
    addr = clean_address(parseaddr(value)[1] or value)
    return addr if addr is not None and len(addr) <= 320 else None


def status_field(value: object) -> str | None:
    """The RFC 3463 status code (``5.1.1``) of a provider's status field, or None."""
    return find_status(value) if isinstance(value, str) else None


def event_id(provider: str, value: object) -> str | None:
    """The provider's event id as stored ("mailgun:abc"), or None when it gives none."""
    if isinstance(value, int | str) and str(value).strip():
        return f"{provider}:{str(value).strip()[:_EVENT_ID_MAX]}"
    return None


def label(provider: str, value: object) -> str | None:
    """The provider's own label as a classifier hint ("postmark:hardbounce")."""
    return f"{provider}:{value.strip().lower()}" if isinstance(value, str) and value.strip() else None


def diagnostic(*texts: object) -> str | None:
    """The first non-empty text, cut to what an event stores."""
    for text in texts:
        if isinstance(text, str) and text.strip():
            return text.strip()[:_DIAGNOSTIC_MAX]
    return None
