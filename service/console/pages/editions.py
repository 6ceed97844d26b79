"""``/console/editions``: the list, one edition's page with its report and copies, its preview, and steering."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter
from litestar.response import Redirect, Template

from ...audit import AuditTrail
from ...db.pool import Database
from ...db.queries import Queries
from ...editions.proofs import ProofIn, send_proofs
from ...editions.report import EditionReport, edition_report
from ...editions.schemas import DeliveryStatus, Edition
from ...editions.steering import Change, steer
from ...runtime import Runtime
from ...schemas import RowId
from ..access import requires_editor, requires_viewer
from ..operator import Operator
from ..web import render, see_other
from .common import PAGE_SIZE, Audit, Conn, Db, NotFoundPage

# The posted HTML is shown as its readers' mail clients would: no script, no form, no plugin, no
# way out of the frame, and nothing fetched but images.  ``sandbox`` without allow-same-origin
# gives the document an origin of its own, so it cannot reach the console's cookies or pages.
PREVIEW_CSP = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; font-src https: data:; "
    "sandbox; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
STEERABLE: dict[Change, set[str]] = {
    "pause": {"scheduled", "queued", "sending"},
    "resume": {"paused"},
    "cancel": {"scheduled", "queued", "sending", "paused"},
}


class EditionRow(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the editions list."""

    id: int
    subject: str
    status: str
    priority: str
    recipients: int
    send_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class EditionList(msgspec.Struct, frozen=True):
    """A page of editions, newest first, and the id to continue before (None: the last page)."""

    items: list[EditionRow]
    next_before: int | None


class Content(msgspec.Struct, frozen=True, kw_only=True):
    """Who an edition is from, whom it was for, and what it says."""

    from_addr: str
    reply_to: str | None
    list_names: list[str]
    filter: Any
    segment: str | None
    text_body: str | None


class CopyRow(msgspec.Struct, frozen=True, kw_only=True):
    """One copy of an edition, with its reader's address (None once erased)."""

    id: int
    subscriber_id: int | None
    email: str | None
    status: str
    attempts: int
    last_reply: str | None
    sent_at: datetime | None
    next_attempt_at: datetime


class EditionPage(msgspec.Struct, frozen=True, kw_only=True):
    """Everything an edition's page shows."""

    edition: Edition
    content: Content
    report: EditionReport
    copies: list[CopyRow]
    names: dict[str, str]
    """Organisations' and roles' names by short name, for the report's rows."""
    status: str | None
    next_after: int | None
    allowed: list[Change]


async def list_editions(conn: asyncpg.Connection, q: Queries, before: int | None) -> EditionList:
    """Editions newest first, before the id ``before`` when given."""
    rows = await conn.fetch(q["console-editions-page"], before, PAGE_SIZE + 1)
    items = [msgspec.convert(dict(r), EditionRow) for r in rows[:PAGE_SIZE]]
    return EditionList(items, items[-1].id if len(rows) > PAGE_SIZE else None)


async def load_edition(conn: asyncpg.Connection, db: Database, edition_id: int, status: str | None,
                       after: int) -> EditionPage:
    """An edition's counts, report, content and a page of its copies; :class:`NotFoundPage` when unknown.

    The report (one pass over every copy, joined to its reader) is the slow part: it runs on a
    second pooled connection while this one reads the rest, so the page takes about as long as
    the report alone.
    """
    report = asyncio.create_task(_report(db, edition_id))
    try:
        row = await conn.fetchrow(db.q["edition-get"], edition_id)
        if row is None:
            raise NotFoundPage(f"There is no edition {edition_id}.")
        edition = msgspec.convert(dict(row), Edition)
        content = await conn.fetchrow(db.q["console-edition-content"], edition_id)
        copies = await conn.fetch(db.q["console-edition-deliveries"], edition_id, status, after, PAGE_SIZE + 1)
        items = [msgspec.convert(dict(r), CopyRow) for r in copies[:PAGE_SIZE]]
        terms = [*await conn.fetch(db.q["agency-list"]), *await conn.fetch(db.q["role-list"])]
        return EditionPage(
            edition=edition,
            content=msgspec.convert(dict(content or {}), Content),
            report=await report,
            copies=items,
            names={r["slug"]: r["name"] for r in terms},
            status=status,
            next_after=items[-1].subscriber_id if len(copies) > PAGE_SIZE else None,
            allowed=[change for change, statuses in STEERABLE.items() if edition.status in statuses],
        )
    finally:
        if not report.done():
            report.cancel()
        # Whatever ended the page, the report is not left running (or failing) unobserved.
        await asyncio.gather(report, return_exceptions=True)


async def _report(db: Database, edition_id: int) -> EditionReport:
    async with db.transaction() as other:
        return await edition_report(other, db, edition_id)


@get("/editions", guards=[requires_viewer], include_in_schema=False)
async def editions_page(
    conn: Conn, db: Db, before: Annotated[int | None, QueryParameter(ge=1)] = None
) -> Template:
    """Every edition, newest first, 50 a page."""
    view = await list_editions(conn, db.q, before)
    return render("console/editions.html", {"title": "Editions", "view": view})


@get("/editions/{edition_id:int}", guards=[requires_viewer], include_in_schema=False)
async def edition_page(
    conn: Conn,
    db: Db,
    edition_id: RowId,
    status: FromQuery[DeliveryStatus | None] = None,
    after: Annotated[int, QueryParameter(ge=0)] = 0,
    proof: FromQuery[str | None] = None,
) -> Template:
    """One edition: counts, breakdown by agency and role, copies by status, preview and steering."""
    view = await load_edition(conn, db, edition_id, status, after)
    return render("console/edition.html", {"title": view.edition.subject, "view": view, "proof_sent": proof == "sent"})


@get("/editions/{edition_id:int}/progress", guards=[requires_viewer], include_in_schema=False)
async def edition_progress(conn: Conn, db: Db, edition_id: RowId) -> Template:
    """An edition's counts alone: what the page's small script swaps in while it sends."""
    row = await conn.fetchrow(db.q["edition-get"], edition_id)
    if row is None:
        raise NotFoundPage(f"There is no edition {edition_id}.")
    return render("console/_edition_counts.html", {"edition": msgspec.convert(dict(row), Edition)})


@get("/editions/{edition_id:int}/preview", guards=[requires_viewer], include_in_schema=False)
async def edition_preview(conn: Conn, db: Db, edition_id: RowId) -> Response[str]:
    """The posted HTML as a sandboxed document, for the edition page's frame."""
    content = await conn.fetchrow(db.q["console-edition-content"], edition_id)
    if content is None:
        raise NotFoundPage(f"There is no edition {edition_id}.")
    return Response(content["html"], media_type="text/html", headers={
        "Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN", "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    })


async def _steer(conn: asyncpg.Connection, db: Database, audit: AuditTrail, edition_id: int,
                 change: Change) -> Redirect:
    edition = await steer(conn, db, edition_id, change)
    await audit.record(f"edition.{change}", "edition", edition_id, {"status": edition.status})
    return see_other(f"/console/editions/{edition_id}")


@post("/editions/{edition_id:int}/pause", guards=[requires_editor], include_in_schema=False, status_code=303)
async def pause_edition(conn: Conn, db: Db, audit: Audit, edition_id: RowId) -> Redirect:
    """Stop sending; copies in flight finish."""
    return await _steer(conn, db, audit, edition_id, "pause")


@post("/editions/{edition_id:int}/resume", guards=[requires_editor], include_in_schema=False, status_code=303)
async def resume_edition(conn: Conn, db: Db, audit: Audit, edition_id: RowId) -> Redirect:
    """Carry on; nobody gets a copy twice."""
    return await _steer(conn, db, audit, edition_id, "resume")


@post("/editions/{edition_id:int}/cancel", guards=[requires_editor], include_in_schema=False, status_code=303)
async def cancel_edition(conn: Conn, db: Db, audit: Audit, edition_id: RowId) -> Redirect:
    """Stop for good; unsent copies are skipped."""
    return await _steer(conn, db, audit, edition_id, "cancel")


@post("/editions/{edition_id:int}/proof", guards=[requires_editor], include_in_schema=False, status_code=303)
async def send_me_a_proof(conn: Conn, db: Db, audit: Audit, runtime: NamedDependency[Runtime],
                          operator: NamedDependency[Operator], edition_id: RowId) -> Redirect:
    """Send the signed-in editor a proof of this edition: composed as its copies are, marked as a proof.

    The same composer, relay and rate limit as ``POST /v1/editions/proof`` (30 in 10 minutes, per user).
    """
    content = await conn.fetchrow(db.q["edition-content"], edition_id)
    if content is None:
        raise NotFoundPage(f"There is no edition {edition_id}.")
    body = ProofIn(subject=content["subject"], html=content["html"], text=content["text_body"],
                   from_=content["from_addr"], reply_to=content["reply_to"], to=[operator.email])
    sent = await send_proofs(conn, db, runtime.settings, runtime.links, f"user:{operator.user_id}",
                             runtime.clock(), body)
    await audit.record("edition.proof", "edition", edition_id, {"to": sent.sent_to})
    return see_other(f"/console/editions/{edition_id}?proof=sent")


handlers = [editions_page, edition_page, edition_progress, edition_preview, pause_edition, resume_edition,
            cancel_edition, send_me_a_proof]

