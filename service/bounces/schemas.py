"""Bodies of the bounce, webhook and suppression endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

from ..schemas import NO_NUL, Email
from .classify import Kind, ReportedKind

SuppressionReason = Literal["hard_bounce", "soft_bounce", "complaint", "erasure", "manual"]


class BounceIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A bounce or complaint already reduced to its facts (by another system)."""

    email: Email
    kind: ReportedKind
    """Your system's label: a hint. A status code or reply code in ``reason`` decides over it."""
    reason: Annotated[str, msgspec.Meta(max_length=2000, extra_json_schema={"pattern": NO_NUL})] | None = None
    """The remote server's words or the provider's description; they are classified like a report."""
    edition_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1, description="an existing edition's id")] | None = None
    """The edition whose copy bounced, when known: it then counts the bounce."""


class BounceMatched(msgspec.Struct, frozen=True):
    """Whether the address belonged to a reader (and so was acted on)."""

    matched: bool


class BounceEvent(msgspec.Struct, frozen=True):
    """One failed, delayed or complaining recipient found in a report."""

    email: str
    kind: Kind
    """hard and soft are bounces; delayed (a warning) and unknown (kept for review) are only recorded."""
    status: str | None
    diagnostic: str | None
    matched: bool
    """Tied to a reader (and, unless this was a dry run, acted on)."""


class BounceEvents(msgspec.Struct, frozen=True):
    """Every event found in a report, in order."""

    events: list[BounceEvent]


class Suppression(msgspec.Struct, frozen=True):
    """An address never to be mailed again."""

    email: str | None
    """None for an erased person: only the address's hash is kept."""
    reason: SuppressionReason
    detail: str | None
    created_at: datetime


class SuppressionPage(msgspec.Struct, frozen=True):
    """Newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[Suppression]
    next_cursor: str | None


_WHOLE_MAIL = "the whole mail, headers and body (not empty, nor only white space)"
_MAIL = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, min_length=1, description=_WHOLE_MAIL)
# As text, "not only white space" is a pattern: some character that bytes.strip() does not remove.
_MAIL_TEXT = Schema(type=OpenAPIType.STRING, pattern="[^\t\n\x0b\x0c\r ]", description=_WHOLE_MAIL)


@dataclass
class RawMailBody(Operation):
    """Documents the raw mail body, which the handler reads itself (Litestar cannot see it)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={
                "message/rfc822": OpenAPIMediaType(schema=_MAIL),
                "text/plain": OpenAPIMediaType(schema=_MAIL_TEXT),
                "application/octet-stream": OpenAPIMediaType(schema=_MAIL),
            },
            description="A bounce, delivery status notification or complaint (ARF) mail, as received.",
            required=True,
        )


@dataclass
class ProviderBody(Operation):
    """Documents a provider's webhook body, which the handler verifies before decoding."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))},
            description=(
                "The provider's own JSON: an SNS message (ses), a bounce or spam-complaint record (postmark), "
                "an event array (sendgrid) or a signed event (mailgun)."
            ),
            required=True,
        )
