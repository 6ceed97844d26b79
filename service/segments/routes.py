"""Route handlers for segments, registered under /v1 by service/app.py.

``POST /v1/segments/preview`` counts an audience; ``/v1/segments`` keeps named
segments (lists plus filter) that previews and editions can refer to by slug.
"""

from __future__ import annotations

import asyncpg
import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.types import ControllerRouterHandler

from ..audit import AuditTrail, changes
from ..db.pool import Database
from ..errors import NotFound, Unprocessable
from ..settings import Settings
from .audience_count import count_audience
from .filter import Filter, parse_filter
from .schemas import Preview, PreviewIn, Segment, SegmentIn, SegmentPatch
from .statement_timeout import statement_timeout

READ = {"scope": "subscribers:read"}
WRITE = {"scope": "admin"}


async def resolve_segment(conn: asyncpg.Connection, db: Database, slug: str) -> tuple[list[str], Filter | None]:
    """The list slugs and parsed filter of saved segment ``slug``; an unknown slug is a 422."""
    row = await conn.fetchrow(db.q["segment-get"], slug)
    if row is None:
        raise Unprocessable(f"There is no segment '{slug}'.")
    return list(row["lists"]), parse_filter(row["filter"])


async def list_ids(conn: asyncpg.Connection, db: Database, slugs: list[str]) -> list[int]:
    """Ids of the lists named by ``slugs``, in order; a 422 naming every unknown slug."""
    rows = await conn.fetch(db.q["list-ids-by-slugs"], slugs)
    found = {r["slug"]: r["id"] for r in rows}
    missing = [s for s in dict.fromkeys(slugs) if s not in found]
    if missing:
        raise Unprocessable(f"Unknown list(s): {', '.join(missing)}.", extra={"unknown_lists": missing})
    return [found[s] for s in dict.fromkeys(slugs)]


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
        if data.segment is not None:
            if data.lists is not None or data.filter is not None:
                raise Unprocessable("Give either 'segment' or 'lists' (with an optional 'filter'), not both.")
            slugs, node = await resolve_segment(conn, db, data.segment)
        elif not data.lists:
            raise Unprocessable("'lists' must name at least one list (or give a 'segment').")
        else:
            slugs, node = data.lists, parse_filter(data.filter)
        ids = await list_ids(conn, db, slugs)
        async with statement_timeout(
            conn, db, settings.preview_timeout_seconds,
            variable="LETTERBOX_PREVIEW_TIMEOUT_SECONDS", what="Counting this audience",
        ):  # fmt: skip
            return Preview(recipients=await count_audience(conn, db, ids, node))

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
        await list_ids(conn, db, lists)
        row = await conn.fetchrow(db.q["segment-insert"], data.slug, data.name, lists, data.filter or None)
        assert row is not None, "INSERT … RETURNING returns the row"
        await audit.record("segment.create", "segment", data.slug, {"lists": lists, "filter": data.filter or None})
        return _segment(row)

    @get("/{slug:str}", opt=READ, summary="Get a saved segment")
    async def get_segment(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], slug: FromPath[str]
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
        slug: FromPath[str],
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
            await list_ids(conn, db, lists)
        row = await conn.fetchrow(db.q["segment-update"], slug, data.name, lists, set_filter, new_filter)
        if row is None:
            raise NotFound(f"There is no segment '{slug}'.")
        await audit.record("segment.update", "segment", slug, changes(data))
        return _segment(row)

    @delete("/{slug:str}", opt=WRITE, summary="Delete a saved segment")
    async def delete_segment(
        self, conn: NamedDependency[asyncpg.Connection], db: NamedDependency[Database], slug: FromPath[str],
        audit: NamedDependency[AuditTrail],
    ) -> None:
        """Forget a segment; editions already posted are not affected."""
        if await conn.fetchval(db.q["segment-delete"], slug) is None:
            raise NotFound(f"There is no segment '{slug}'.")
        await audit.record("segment.delete", "segment", slug)


def _segment(row: asyncpg.Record) -> Segment:
    return msgspec.convert(dict(row), Segment)


api_handlers: list[ControllerRouterHandler] = [SegmentController]
