"""``/v1/editions``: post, check, proof, inspect, report, pause, resume, cancel, list deliveries."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, HeaderParameter, JSONBody, QueryParameter

from ..audit import AuditTrail
from ..db.pool import Database
from ..errors import NotFound
from ..pagination import Cursor, decode_cursor, encode_cursor
from ..problem_docs import PROBLEMS
from ..runtime import Runtime
from ..schemas import IDEMPOTENCY_KEY, RowId
from ..settings import Settings
from .checks import CheckReport, check_edition
from .posting import post_edition
from .proofs import ProofIn, ProofSent, api_requester, send_proofs
from .report import EditionReport, edition_report
from .schemas import Delivery, DeliveryPage, DeliveryStatus, Edition, EditionAccepted, EditionIn
from .steering import steer

WRITE = {"scope": "editions:write"}
READ = {"scope": "editions:read"}
EditionId = RowId


class EditionController(Controller):
    """The send queue that renderers post finished editions to."""

    path = "/editions"
    tags = ["editions"]  # noqa: RUF012 - Litestar's own attribute type

    @post("/", opt=WRITE, status_code=202, summary="Queue a finished edition")
    async def create(
        self,
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        data: JSONBody[EditionIn],
        audit: NamedDependency[AuditTrail],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", **IDEMPOTENCY_KEY)] = None,
    ) -> EditionAccepted:
        """Freeze the recipients and queue a copy for each; a retried post with the same key is answered again."""
        accepted = await post_edition(conn, db, settings, idempotency_key, data)
        await audit.record("edition.post", "edition", accepted.id, {"subject": data.subject})
        return accepted

    @post("/check", opt=WRITE, status_code=200, summary="Check an edition before it is sent")
    async def check(self, data: JSONBody[EditionIn]) -> CheckReport:
        """Accessibility and deliverability problems a reader would meet; nothing is written or sent."""
        return check_edition(data)

    @post("/proof", opt={**WRITE, PROBLEMS: (429, 502, 503)}, status_code=202, summary="Send proofs of an edition")
    async def proof(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        runtime: NamedDependency[Runtime],
        data: JSONBody[ProofIn],
    ) -> ProofSent:
        """Send up to ten copies at once, composed as edition copies and marked ``X-Letterbox-Proof: yes``.

        No edition or delivery is recorded; the proof's unsubscribe link shows the page and changes nothing.
        """
        now = runtime.clock()
        return await send_proofs(conn, db, settings, runtime.links, api_requester(request.state.principal), now, data)

    @get("/{edition_id:int}/report", opt=READ, summary="An edition's copies by agency and by role")
    async def report(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], edition_id: EditionId
    ) -> EditionReport:
        """Recipients, sent, failed, skipped, bounced, complained and unsubscribed per agency and per role."""
        return await edition_report(conn, db, edition_id)

    @get("/{edition_id:int}", opt=READ, summary="An edition's status and counts")
    async def show(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], edition_id: EditionId
    ) -> Edition:
        """Status and counts: recipients, queued, sent, failed, skipped, bounced, complained, unsubscribed."""
        row = await conn.fetchrow(db.q["edition-get"], edition_id)
        if row is None:
            raise NotFound(f"There is no edition {edition_id}.")
        return msgspec.convert(dict(row), Edition)

    @post("/{edition_id:int}/pause", opt=WRITE, status_code=200, summary="Pause an edition")
    async def pause(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], edition_id: EditionId,
        audit: NamedDependency[AuditTrail],
    ) -> Edition:
        """Stop sending; copies in flight finish. Resume later without sending anyone twice."""
        edition = await steer(conn, db, edition_id, "pause")
        await audit.record("edition.pause", "edition", edition_id)
        return edition

    @post("/{edition_id:int}/resume", opt=WRITE, status_code=200, summary="Resume a paused edition")
    async def resume(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], edition_id: EditionId,
        audit: NamedDependency[AuditTrail],
    ) -> Edition:
        """Carry on from where it stopped; copies already sent are not sent again."""
        edition = await steer(conn, db, edition_id, "resume")
        await audit.record("edition.resume", "edition", edition_id)
        return edition

    @post("/{edition_id:int}/cancel", opt=WRITE, status_code=200, summary="Cancel an edition")
    async def cancel(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], edition_id: EditionId,
        audit: NamedDependency[AuditTrail],
    ) -> Edition:
        """Stop for good; unsent copies are skipped."""
        edition = await steer(conn, db, edition_id, "cancel")
        await audit.record("edition.cancel", "edition", edition_id)
        return edition

    @get("/{edition_id:int}/deliveries", opt=READ, summary="An edition's deliveries")
    async def deliveries(
        self,
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        edition_id: EditionId,
        status: FromQuery[DeliveryStatus | None] = None,
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> DeliveryPage:
        """Deliveries in id order, optionally of one status; keyset pagination with ``cursor``."""
        if await conn.fetchval(db.q["edition-exists"], edition_id) is None:
            raise NotFound(f"There is no edition {edition_id}.")
        after = decode_cursor("d", cursor)
        rows = await conn.fetch(db.q["edition-deliveries"], edition_id, status, after, limit + 1)
        items = [msgspec.convert(dict(r), Delivery) for r in rows[:limit]]
        next_cursor = encode_cursor("d", rows[limit - 1]["id"]) if len(rows) > limit else None
        return DeliveryPage(items=items, next_cursor=next_cursor)

