"""What a bounce or complaint does to a reader: the one place those rules live.

Hard bounce: suppress at once, status ``bounced``.  Complaint: suppress,
status ``complained``, and leave every list.  Soft bounce: count; the limit
within the window (no delivery in between) suppresses like a hard bounce.
A delay warning (``delayed``) and a report no rule classifies (``unknown``)
are recorded for review and do nothing else.  A copy counts at most one
bounce however many reports arrive for it (a later hard bounce still
suppresses), and a provider event already recorded changes nothing.
Addresses we do not know change nothing.
"""

from __future__ import annotations

import asyncpg
import msgspec

from ..db.queries import Queries
from ..events.outbox import emit_subscriber
from ..events.types import BOUNCE_EVENTS
from ..settings import Settings
from .classify import Kind


class BounceFacts(msgspec.Struct, frozen=True, kw_only=True):
    """One bounce or complaint, normalised, from whichever way it arrived."""

    email: str
    kind: Kind
    status: str | None = None
    diagnostic: str | None = None
    source: str
    delivery_id: int | None = None
    edition_id: int | None = None
    subscriber_id: int | None = None
    event_id: str | None = None
    """The provider's id of the event: the same id from the same source is acted on once."""


async def apply_bounce(conn: asyncpg.Connection, q: Queries, settings: Settings, facts: BounceFacts) -> bool:
    """Record the event and act on it; return whether it matched a subscriber. Call inside a transaction."""
    subscriber_id, edition_id = facts.subscriber_id, facts.edition_id
    if facts.delivery_id is not None:
        delivery = await conn.fetchrow(q["delivery-for-bounce"], facts.delivery_id)
        if delivery is not None:
            subscriber_id = subscriber_id or delivery["subscriber_id"]
            edition_id = edition_id or delivery["edition_id"]
    person = await conn.fetchrow(q["subscriber-for-bounce"], subscriber_id, facts.email)
    if person is None:
        return False
    email = person["email"]
    recorded = await conn.fetchrow(
        q["bounce-event-insert"], person["id"], facts.delivery_id, edition_id, email,
        facts.kind, facts.status, facts.diagnostic, facts.source, facts.event_id,
    )  # fmt: skip
    if recorded is None:
        return True  # a provider event we already have: acted on when it first came
    detail = " ".join(p for p in (facts.status, facts.diagnostic) if p) or facts.source
    if facts.kind == "complaint":
        await conn.execute(q["suppression-add"], email, "complaint", detail)
        await conn.execute(q["subscriber-set-complained"], person["id"])
    elif facts.kind == "hard":
        await conn.execute(q["suppression-add"], email, "hard_bounce", detail)
        await conn.execute(q["subscriber-set-bounced"], person["id"])
    elif facts.kind == "soft" and recorded["counted"]:
        count = await conn.fetchval(
            q["subscriber-count-soft-bounce"], person["id"], settings.soft_bounce_window_days, facts.delivery_id
        )
        if count is not None and count >= settings.soft_bounce_limit:
            await conn.execute(q["suppression-add"], email, "soft_bounce", f"{count} soft bounces: {detail}")
            await conn.execute(q["subscriber-set-bounced"], person["id"])
    await _emit_bounce(conn, q, facts, person["id"], person["status"], edition_id, counted=recorded["counted"])
    return True


async def _emit_bounce(conn: asyncpg.Connection, q: Queries, facts: BounceFacts, subscriber_id: int, status_before: str,
                      edition_id: int | None, *, counted: bool) -> None:
    """Record ``bounce.hard``, ``bounce.soft`` or ``complaint`` for a report that was acted on (not a replay).

    A bounce fires when it counted (a second report about the same copy does not), and a hard
    bounce also when it is what makes the reader ``bounced`` (a copy that bounced soft first);
    every complaint fires. A delay warning or an unclassified report fires nothing.
    """
    event_type = BOUNCE_EVENTS.get(facts.kind)
    suppresses = event_type == "bounce.hard" and status_before not in ("bounced", "complained")
    if event_type is None or not (counted or suppresses or event_type == "complaint"):
        return
    await emit_subscriber(conn, q, event_type, subscriber_id, edition_id=edition_id, status=facts.status,
                          diagnostic=facts.diagnostic, source=facts.source)
