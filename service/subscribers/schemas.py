"""JSON bodies of the subscriber API, as msgspec Structs.

Inputs forbid unknown fields (a misspelt field is a 422, never silently
dropped).  ``UNSET`` tells "not given" from ``null`` in PATCH bodies, so
``{"agency": null}`` clears an agency while ``{}`` leaves it alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ..schemas import NO_NUL, PERSON_NAME, STORABLE_JSON, Email, Input, Slug

PersonName = Annotated[
    str,
    Meta(max_length=200, description="one line: no control characters", extra_json_schema={"pattern": PERSON_NAME}),
]
Attributes = Annotated[
    dict[str, Any],
    Meta(
        description="free-form JSON object, e.g. {\"team\": \"north\"}",
        extra_json_schema={"propertyNames": {"pattern": NO_NUL}, "additionalProperties": STORABLE_JSON},
    ),
]
Status = Literal["pending", "active", "unsubscribed", "bounced", "complained"]


class SubscriptionIn(Input):
    """Ask for a subscription on someone's behalf: the same double opt-in as the public form."""

    email: Email
    lists: Annotated[list[Slug], Meta(min_length=1, max_length=100, description="slugs of existing lists")]
    name: PersonName = ""
    agency: Annotated[Slug | None, Meta(description="an existing agency's slug")] = None
    role: Annotated[Slug | None, Meta(description="an existing role's slug")] = None
    attributes: Attributes = msgspec.field(default_factory=dict)


class Accepted(msgspec.Struct, kw_only=True):
    """A subscription request was taken; a confirmation mail follows when one is due."""

    status: Literal["pending"] = "pending"


class ListStatus(msgspec.Struct, kw_only=True):
    """One of a person's subscriptions."""

    slug: str
    status: Literal["pending", "confirmed", "unsubscribed"]


class Subscriber(msgspec.Struct, kw_only=True):
    """A person as the API shows them."""

    id: int
    email: str
    name: str
    agency: str | None
    role: str | None
    attributes: dict[str, Any]
    status: Status
    lists: list[ListStatus]
    created_at: datetime
    confirmed_at: datetime | None


class SubscriberPage(msgspec.Struct, kw_only=True):
    """One page of people; pass ``next_cursor`` back as ``cursor`` for the next (null: no more)."""

    items: list[Subscriber]
    next_cursor: str | None


class SubscriberPatch(Input):
    """An operator's change. Absent fields stay; ``attributes`` replaces the whole object.

    ``status`` may be set to ``unsubscribed`` (leaves every list) or to ``active``
    (only from ``bounced``, once the address is no longer suppressed).
    """

    json_schema_extra: ClassVar[dict[str, Any]] = {"minProperties": 1}

    name: PersonName | UnsetType = UNSET
    agency: Annotated[Slug | None, Meta(description="an existing agency's slug; null clears it")] | UnsetType = UNSET
    role: Annotated[Slug | None, Meta(description="an existing role's slug; null clears it")] | UnsetType = UNSET
    attributes: Attributes | UnsetType = UNSET
    status: Literal["active", "unsubscribed"] | UnsetType = UNSET


class InvalidLine(msgspec.Struct, kw_only=True):
    """An import line that was not imported, and why."""

    line: int
    detail: str


class ImportResult(msgspec.Struct, kw_only=True):
    """What an import did. ``invalid`` lists at most the first 1,000 bad lines; ``invalid_total`` counts them all."""

    created: int
    updated: int
    skipped: int
    invalid: list[InvalidLine]
    invalid_total: int


class ExportSubscription(msgspec.Struct, kw_only=True):
    """A subscription as held."""

    slug: str
    name: str
    status: str
    created_at: datetime
    updated_at: datetime


class ExportConsent(msgspec.Struct, kw_only=True):
    """A consent record as held."""

    action: str
    lists: list[str]
    source: str
    ip: str | None
    user_agent: str | None
    wording_version: str | None
    created_at: datetime


class ExportBounce(msgspec.Struct, kw_only=True):
    """A bounce or complaint as held."""

    kind: str
    status: str | None
    diagnostic: str | None
    source: str
    edition_id: int | None
    created_at: datetime


class ExportDeliveries(msgspec.Struct, kw_only=True):
    """Copies of editions addressed to the person, by outcome."""

    total: int
    by_status: dict[str, int]
    last_sent_at: datetime | None


class ExportSystemMail(msgspec.Struct, kw_only=True):
    """A confirmation or other system mail queued for the person (its text is the standard one)."""

    kind: str
    status: str
    created_at: datetime
    sent_at: datetime | None


class ExportSuppression(msgspec.Struct, kw_only=True):
    """Why the address is not mailed."""

    reason: str
    detail: str | None
    created_at: datetime


class SubscriberExport(msgspec.Struct, kw_only=True):
    """Everything Letterbox holds about one person (GDPR access request)."""

    subscriber: Subscriber
    subscriptions: list[ExportSubscription]
    consents: list[ExportConsent]
    bounce_events: list[ExportBounce]
    deliveries: ExportDeliveries
    system_mails: list[ExportSystemMail]
    suppression: ExportSuppression | None
