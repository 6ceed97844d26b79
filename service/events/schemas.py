"""Bodies of the event-endpoints API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from ..schemas import NO_NUL
from .types import EventType

MessageStatus = Literal["pending", "delivered", "failed"]

# What urlsplit() and check_url() (addresses.py) take for the host part: no '@' (credentials), no control
# character or space; and a '[' only if a ']' closes an IPv6 (or IPvFuture) address, the one part urlsplit checks.
_NOT = r"\x00-\x20\x7f@/?#"
_IP_LITERAL = rf"\[(?:[0-9A-Fa-f:.]+(?:%[^{_NOT}\]]*)?|v[0-9A-Fa-f]+\.[^{_NOT}\]]+)\]"
_HOST_PART = rf"(?:[^{_NOT}\[\]]+|[^{_NOT}\[]*{_IP_LITERAL}[^{_NOT}]*)"
EndpointUrl = Annotated[
    str,
    Meta(
        min_length=8,
        max_length=2000,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://",
        description=(
            "https URL on a public address (http and private addresses need LETTERBOX_EVENT_ALLOW_PRIVATE): "
            "no spaces or control characters, no user name or password, a host and a port up to 65535"
        ),
        # What check_url (addresses.py) reads: a host part without '@' (credentials), then a path, query or fragment.
        extra_json_schema={
            "allOf": [{"pattern": rf"^[Hh][Tt][Tt][Pp][Ss]?://{_HOST_PART}(?:[/?#][^\x00-\x20\x7f]*)?$"}]
        },
    ),
]


class EventEndpointIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A URL to post events to, and the event types it wants."""

    url: EndpointUrl
    events: Annotated[list[EventType], Meta(min_length=1, max_length=20)]
    description: Annotated[str, Meta(max_length=500, extra_json_schema={"pattern": NO_NUL})] = ""


class EventEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """An endpoint as listed: never with its secret."""

    id: int
    url: str
    events: list[EventType]
    description: str
    created_at: datetime


class EventEndpointCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new endpoint with its signing secret, shown this once."""

    id: int
    url: str
    events: list[EventType]
    description: str
    secret: str
    """``whsec_`` and base64: verify each message with it (Standard Webhooks). It is not shown again."""
    created_at: datetime


class EventEndpointPage(msgspec.Struct, frozen=True):
    """Endpoints in id order; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[EventEndpoint]
    next_cursor: str | None


class EventAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One try of a message."""

    attempt: int
    tried_at: datetime
    status: int | None
    """The endpoint's HTTP status (None when there was no answer)."""
    reply: str | None
    """The start of the endpoint's reply, or what went wrong (a timeout, a refused address)."""


class EventMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One event sent (or being sent) to the endpoint, with its latest try."""

    id: int
    webhook_id: str
    """The ``webhook-id`` header: the same on every try of this event."""
    type: EventType
    status: MessageStatus
    attempts: int
    last_status: int | None
    """The HTTP status of the latest try (None when there was no answer)."""
    last_error: str | None
    """What went wrong with the latest try: the start of the reply, a timeout, a refused address."""
    created_at: datetime
    next_attempt_at: datetime | None
    """When the next try is due (pending messages only)."""
    delivered_at: datetime | None
    tries: list[EventAttempt]
    """Every try so far, in order, each with its status and reply."""


class EventMessagePage(msgspec.Struct, frozen=True):
    """Newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[EventMessage]
    next_cursor: str | None
