"""Request and response bodies of the editions API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from ..schemas import CONTROL, ONE_LINE, STRIPPED_ONE_LINE, Slug
from ..segments.schemas import TARGET, RawFilter

EditionStatus = Literal["scheduled", "queued", "sending", "paused", "cancelled", "done"]
DeliveryStatus = Literal["queued", "sending", "sent", "failed", "skipped"]
Priority = Literal["normal", "urgent"]

Subject = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=300,
        description="one line: no control characters",
        extra_json_schema={"pattern": ONE_LINE},
    ),
]
# service/mail/compose.py's mailbox (_MAILBOX, _ADDRESS): "addr@domain" or "Name <addr@domain>".  'from' is
# checked by one_line() and stripped before the composer's control-character check; 'reply_to' as it came.
_ADDRESS = r"[^\x00-\x20\x7f-\x9f\u2028\u2029<>()\[\]\\,;:@\"]+@[^\x00-\x20\x7f-\x9f\u2028\u2029<>()\[\]\\,;:@\"]+"
_MAILBOX = rf"(?:[^{CONTROL}]*<{_ADDRESS}>|{_ADDRESS})"
_BLANK = r"[^\S\x00-\x1f\x7f-\x9f\u2028\u2029]*"  # white space that is not a control character


_MAILBOX_TEXT = "'addr@example.org' or 'Name <addr@example.org>', on one line; the domain needs an IDNA form"


def _mailbox(edges: str) -> dict[str, Any]:
    """The schema of a mailbox whose surrounding white space matches ``edges``."""
    return {"anyOf": [{"format": "idn-email"}, {"pattern": rf"^{edges}{_MAILBOX}{edges}$"}]}


From = Annotated[
    str, Meta(min_length=3, max_length=320, description=_MAILBOX_TEXT, extra_json_schema=_mailbox(STRIPPED_ONE_LINE))
]
ReplyTo = Annotated[
    str, Meta(min_length=3, max_length=320, description=_MAILBOX_TEXT, extra_json_schema=_mailbox(_BLANK))
]
Moment = Annotated[datetime, Meta(description="with a time zone", extra_json_schema={"format": "date-time"})]


class EditionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A finished edition posted by a renderer: to a saved ``segment``, or to ``lists`` with an optional filter."""

    json_schema_extra: ClassVar[dict[str, Any]] = TARGET

    subject: Subject
    html: Annotated[str, Meta(min_length=1)]
    text: str | None = None
    lists: Annotated[list[Slug], Meta(description="slugs of existing lists")] = msgspec.field(default_factory=list)
    filter: RawFilter | None = None
    segment: Annotated[Slug | None, Meta(description="a saved segment's slug")] = None
    from_: From | None = msgspec.field(default=None, name="from")
    reply_to: ReplyTo | None = None
    send_at: Moment | None = None
    expires_at: Annotated[Moment | None, Meta(description="later than send_at (or than now)")] = None
    """When the content stops being timely: copies not sent by then are skipped (default: never)."""
    priority: Priority = "normal"
    """``urgent`` editions (a safeguarding alert) are sent before ``normal`` ones sending at the same time."""


class EditionAccepted(msgspec.Struct, kw_only=True):
    """The answer to a post: the edition, its status and its frozen recipient count."""

    id: int
    status: EditionStatus
    recipients: int


class Edition(msgspec.Struct, kw_only=True):
    """An edition's state and counts."""

    id: int
    status: EditionStatus
    status_reason: str | None
    priority: Priority
    subject: str
    lists: list[str]
    send_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    recipients: int
    queued: int
    sent: int
    failed: int
    skipped: int
    bounced: int
    complained: int
    unsubscribed: int


class Delivery(msgspec.Struct, kw_only=True):
    """One copy of an edition."""

    id: int
    subscriber_id: int | None
    status: DeliveryStatus
    attempts: int
    last_reply: str | None
    message_id: str | None
    sent_at: datetime | None
    next_attempt_at: datetime


class DeliveryPage(msgspec.Struct, kw_only=True):
    """A page of deliveries; pass ``next_cursor`` back as ``cursor`` for the next."""

    items: list[Delivery]
    next_cursor: str | None
