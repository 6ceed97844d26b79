"""What a bounce or complaint does to a reader: the one place those rules live.

Hard bounce: suppress at once, status ``bounced``.  Complaint: suppress,
status ``complained``, and leave every list.  Soft bounce: count; the limit
within the window (no delivery in between) suppresses like a hard bounce.
Addresses we do not know change nothing.
"""

from __future__ import annotations

from typing import Literal

import asyncpg
import msgspec

from ..db.queries import Queries
from ..settings import Settings

Kind = Literal["hard", "soft", "complaint"]


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
    await conn.execute(
        q["bounce-event-insert"], person["id"], facts.delivery_id, edition_id, email,
        facts.kind, facts.status, facts.diagnostic, facts.source,
    )
    detail = " ".join(p for p in (facts.status, facts.diagnostic) if p) or facts.source
    if facts.kind == "complaint":
        await conn.execute(q["suppression-add"], email, "complaint", detail)
        await conn.execute(q["subscriber-set-complained"], person["id"])
    elif facts.kind == "hard":
        await conn.execute(q["suppression-add"], email, "hard_bounce", detail)
        await conn.execute(q["subscriber-set-bounced"], person["id"])
    else:
        count = await conn.fetchval(
            q["subscriber-count-soft-bounce"], person["id"], settings.soft_bounce_window_days, facts.delivery_id
        )
        if count is not None and count >= settings.soft_bounce_limit:
            await conn.execute(q["suppression-add"], email, "soft_bounce", f"{count} soft bounces: {detail}")
            await conn.execute(q["subscriber-set-bounced"], person["id"])
    return True
