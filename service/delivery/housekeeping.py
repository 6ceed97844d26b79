"""Periodic tasks any worker may run: scheduled editions, finished editions, stale rows.

Each statement is safe to run from many workers at once.
"""

from __future__ import annotations

import structlog

from ..db.pool import Database
from ..events.outbox import emit_edition
from ..settings import Settings

log = structlog.get_logger(__name__)

# A copy whose worker died this many times before writing its result fails (it may be the cause).
LOST_LEASE_LIMIT = 3


async def housekeeping(db: Database, settings: Settings) -> None:
    """Release due scheduled editions, cancel stale ones, pause those the complaint guard stops, close
    finished ones, reclaim dead leases, forget old rate-limit windows."""
    lateness = settings.edition_max_lateness_hours * 3600
    async with db.pool.acquire() as conn:
        cancelled = await conn.fetch(db.q["edition-cancel-stale"], lateness)
        for edition_id in {r["edition_id"] for r in cancelled}:
            log.warning("edition_cancelled_stale", edition_id=edition_id)
        for row in await conn.fetch(db.q["edition-release-scheduled"], lateness):
            log.info("edition_released", edition_id=row["id"])
        async with conn.transaction():  # paused or done together with its event
            guarded = await conn.fetch(
                db.q["edition-guard"], settings.guard_min_sent, settings.guard_complaint_rate,
                settings.guard_hard_bounce_rate,
            )
            for row in guarded:
                log.error("edition_paused", edition_id=row["id"], reason=row["status_reason"])
                await emit_edition(conn, db.q, "edition.paused", row["id"])
            for row in await conn.fetch(db.q["edition-finish"]):
                log.info("edition_done", edition_id=row["id"])
                await emit_edition(conn, db.q, "edition.done", row["id"])
        reclaimed = await conn.execute(db.q["delivery-reclaim-expired"], LOST_LEASE_LIMIT)
        if reclaimed != "UPDATE 0":
            log.warning("leases_expired", reclaimed=int(reclaimed.split()[1]))
        await conn.execute(db.q["rate-limit-purge"])
