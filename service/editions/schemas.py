"""Request and response bodies of the editions API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ..schemas import Slug

EditionStatus = Literal["scheduled", "queued", "sending", "paused", "cancelled", "done"]
DeliveryStatus = Literal["queued", "sending", "sent", "failed", "skipped"]
Priority = Literal["normal", "urgent"]

Subject = Annotated[str, Meta(min_length=1, max_length=300, description="one line, no CR/LF")]
Address = Annotated[str, Meta(min_length=3, max_length=320, description="'Name <addr@example.org>' or 'addr@…'")]


class EditionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A finished edition posted by a renderer."""

    subject: Subject
    html: Annotated[str, Meta(min_length=1)]
    text: str | None = None
    lists: list[Slug] = msgspec.field(default_factory=list)
    filter: dict[str, Any] | None = None
    segment: Slug | None = None
    from_: Address | None = msgspec.field(default=None, name="from")
    reply_to: Address | None = None
    send_at: datetime | None = None
    expires_at: datetime | None = None
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
