"""Route handlers for segments, registered under /v1 by service/app.py.

``POST /v1/segments/preview`` counts an audience; ``/v1/segments`` keeps named
segments (lists plus filter) that previews and editions can refer to by slug.
"""

from __future__ import annotations

import asyncpg
import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.types import ControllerRouterHandler

from ..audit import AuditTrail, changes
from ..db.pool import Database
from ..errors import NotFound, Unprocessable
from ..schemas import SlugPath
from ..settings import Settings
from ..taxonomy.terms import resolve_lists
from .audience_count import count_audience
from .filter import parse_filter
from .schemas import Preview, PreviewIn, Segment, SegmentIn, SegmentPatch
from .statement_timeout import statement_timeout
from .targets import resolve_target

READ = {"scope": "subscribers:read"}
WRITE = {"scope": "admin"}


class SegmentController(Controller):
    """``/v1/segments``: audience previews and saved segments."""

    path = "/segments"
    tags = ["segments"]  # noqa: RUF012 - Litestar's own attribute type

    @post("/preview", opt=READ, status_code=200, summary="Count an audience")
    async def preview(
        self,
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        data: JSONBody[PreviewIn],
    ) -> Preview:
        """How many people an edition to these lists and filter (or this segment) would reach now."""
        target = await resolve_target(conn, db.q, segment=data.segment, lists=data.lists, filter_=data.filter)
        async with statement_timeout(
            conn, db, settings.preview_timeout_seconds,
            variable="LETTERBOX_PREVIEW_TIMEOUT_SECONDS", what="Counting this audience",
        ):  # fmt: skip
            return Preview(recipients=await count_audience(conn, db, target.list_ids, target.filter))

    @get("/", opt=READ, summary="List saved segments")
    async def list_segments(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database]
    ) -> list[Segment]:
        """Every saved segment, in name order."""
        return [_segment(r) for r in await conn.fetch(db.q["segment-list"])]

    @post("/", opt=WRITE, summary="Save a segment")
    async def add_segment(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], data: JSONBody[SegmentIn],
        audit: NamedDependency[AuditTrail],
    ) -> Segment:
        """Save a segment (422 for a bad filter or unknown lists, 409 if the slug exists)."""
        parse_filter(data.filter)
        lists = list(dict.fromkeys(data.lists))
        await resolve_lists(conn, db.q, lists)
        row = await conn.fetchrow(db.q["segment-insert"], data.slug, data.name, lists, data.filter or None)
        assert row is not None, "INSERT … RETURNING returns the row"
        await audit.record("segment.create", "segment", data.slug, {"lists": lists, "filter": data.filter or None})
        return _segment(row)

    @get("/{slug:str}", opt=READ, summary="Get a saved segment")
    async def get_segment(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], slug: SlugPath
    ) -> Segment:
        """One saved segment."""
        row = await conn.fetchrow(db.q["segment-get"], slug)
        if row is None:
            raise NotFound(f"There is no segment '{slug}'.")
        return _segment(row)

    @patch("/{slug:str}", opt=WRITE, summary="Change a saved segment")
    async def change_segment(
        self,
        conn: NamedDependency[asyncpg.Connection],
        db: NamedDependency[Database],
        slug: SlugPath,
        data: JSONBody[SegmentPatch],
        audit: NamedDependency[AuditTrail],
    ) -> Segment:
        """Change a segment's name, lists or filter (``"filter": null`` removes the filter)."""
        if data == SegmentPatch():
            raise Unprocessable("Nothing to change: give name, lists or filter.")
        set_filter = data.filter is not msgspec.UNSET
        new_filter = data.filter if isinstance(data.filter, dict) and data.filter else None
        parse_filter(new_filter)
        lists = list(dict.fromkeys(data.lists)) if data.lists is not None else None
        if lists is not None:
            await resolve_lists(conn, db.q, lists)
        row = await conn.fetchrow(db.q["segment-update"], slug, data.name, lists, set_filter, new_filter)
        if row is None:
            raise NotFound(f"There is no segment '{slug}'.")
        await audit.record("segment.update", "segment", slug, changes(data))
        return _segment(row)

    @delete("/{slug:str}", opt=WRITE, summary="Delete a saved segment")
    async def delete_segment(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], slug: SlugPath,
        audit: NamedDependency[AuditTrail],
    ) -> None:
        """Forget a segment; editions already posted are not affected."""
        if await conn.fetchval(db.q["segment-delete"], slug) is None:
            raise NotFound(f"There is no segment '{slug}'.")
        await audit.record("segment.delete", "segment", slug)


def _segment(row: asyncpg.Record) -> Segment:
    return msgspec.convert(dict(row), Segment)


api_handlers: list[ControllerRouterHandler] = [SegmentController]
