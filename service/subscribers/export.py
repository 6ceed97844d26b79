"""Everything Letterbox holds about one person, for an access request (GDPR article 15)."""

from __future__ import annotations

from typing import TypeVar

import asyncpg
import msgspec

from ..db.queries import Queries
from .schemas import (
    ExportBounce,
    ExportConsent,
    ExportDeliveries,
    ExportSubscription,
    ExportSuppression,
    ExportSystemMail,
    Subscriber,
    SubscriberExport,
)

T = TypeVar("T")


async def export_subscriber(conn: asyncpg.Connection, q: Queries, subscriber_id: int) -> SubscriberExport | None:
    """The person's data from every table that holds some, or None when there is no such person."""
    person = await conn.fetchrow(q["subscriber-get"], subscriber_id)
    if person is None:
        return None
    deliveries = await conn.fetch(q["export-deliveries-summary"], subscriber_id)
    suppression = await conn.fetchrow(q["export-suppression"], person["email"])
    sent_times = [r["last_sent_at"] for r in deliveries if r["last_sent_at"] is not None]
    return SubscriberExport(
        subscriber=msgspec.convert(dict(person), Subscriber),
        subscriptions=_all(await conn.fetch(q["export-subscriptions"], subscriber_id), ExportSubscription),
        consents=_all(await conn.fetch(q["consent-history"], subscriber_id), ExportConsent),
        bounce_events=_all(await conn.fetch(q["export-bounce-events"], subscriber_id), ExportBounce),
        deliveries=ExportDeliveries(
            total=sum(r["copies"] for r in deliveries),
            by_status={r["status"]: r["copies"] for r in deliveries},
            last_sent_at=max(sent_times, default=None),
        ),
        system_mails=_all(await conn.fetch(q["export-system-mails"], subscriber_id), ExportSystemMail),
        suppression=None if suppression is None else msgspec.convert(dict(suppression), ExportSuppression),
    )


def _all(rows: list[asyncpg.Record], kind: type[T]) -> list[T]:
    return [msgspec.convert(dict(r), kind) for r in rows]
