"""Forgetting sign-ups that were never confirmed.

Someone who never pressed the confirmation button never consented, so we do
not keep their address: after ``pending_purge_days`` without a new request
the person is deleted, and other people's unconfirmed requests for more
lists are dropped.  The clock starts again whenever they ask again.
"""

from __future__ import annotations

import structlog

from ..db.pool import Database
from ..settings import Settings

log = structlog.get_logger(__name__)


async def purge_pending(db: Database, settings: Settings) -> int:
    """Delete never-confirmed people and unconfirmed list requests older than the limit; return people deleted.

    Safe to run from several workers at once (plain DELETEs).
    """
    async with db.transaction() as conn:
        people: int = await conn.fetchval(db.q["purge-pending-subscribers"], settings.pending_purge_days)
        requests: int = await conn.fetchval(db.q["purge-pending-subscriptions"], settings.pending_purge_days)
    if people or requests:
        log.info("pending_purged", people=people, list_requests=requests)
    return people
